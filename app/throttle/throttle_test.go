package throttle_test

import (
	"fmt"
	"testing"
	"time"

	"fiberauth/app/throttle"
)

func TestRuleDelay(t *testing.T) {
	r := throttle.Rule{Limit: 5, Window: 15 * time.Minute, Base: 30 * time.Second}
	for n, want := range map[int]time.Duration{1: 0, 4: 0, 5: 30 * time.Second, 6: time.Minute,
		9: 8 * time.Minute, 10: 15 * time.Minute, 1000: 15 * time.Minute} {
		if got := r.Delay(n); got != want {
			t.Errorf("Delay(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int{0: 1, time.Millisecond: 1, time.Second: 1, 1500 * time.Millisecond: 2, time.Minute: 60} {
		if got := throttle.RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}

func TestAddressKey(t *testing.T) {
	tests := map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
		"fe80::1%eth0":         "fe80::/64",
	}
	for in, want := range tests {
		if got := throttle.AddressKey(in); got != want {
			t.Errorf("AddressKey(%q) = %q, want %q", in, got, want)
		}
	}
	bad := throttle.AddressKey("not an address")
	if bad == "not an address" || len(bad) != len(throttle.AddressKey(fmt.Sprint("x", 1, "y"))) {
		t.Errorf("AddressKey of garbage = %q, want a fixed-size digest", bad)
	}
}
