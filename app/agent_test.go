package app

import (
	"strings"
	"testing"
)

func TestDescribeAgent(t *testing.T) {
	tests := []struct{ ua, want string }{
		{"", "Unknown client"},
		{"   ", "Unknown client"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36", "Headless Chrome 156 on Linux"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome 131 on Windows"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86", "Edge 131 on Windows"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox 133 on macOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "Safari 18 on iPhone"},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.104 Mobile Safari/537.36", "Chrome 131 on Android"},
		{"curl/8.5.0", "curl 8"},
		{"Go-http-client/1.1", "Go-http-client 1"},
		{"python-requests/2.32.3", "python-requests 2"},
		{"my-script", "my-script"},
		{"Firefox/", "Firefox"},
		{"Chrome/x.y (Linux)", "Chrome on Linux"},
	}
	for _, tc := range tests {
		if got := describeAgent(tc.ua); got != tc.want {
			t.Errorf("describeAgent(%q) = %q, want %q", tc.ua, got, tc.want)
		}
	}
	long := describeAgent("x" + strings.Repeat("é", 100))
	if n := len([]rune(long)); n != 60 {
		t.Errorf("a long program name is shown as %d runes, want 60", n)
	}
}
