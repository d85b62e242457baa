package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// view sets the page width and colour scheme the browser reports.
func (c *chrome) view(width int64, scheme string) {
	c.t.Helper()
	if _, err := chromedp.Call(c.ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width: width, Height: 900, DeviceScaleFactor: 1, Mobile: width < 600}); err != nil {
		c.t.Fatal(err)
	}
	if _, err := chromedp.Call(c.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}); err != nil {
		c.t.Fatal(err)
	}
}

// contrastJS computes the WCAG contrast ratio between an element's text
// colour and the background behind it (the first ancestor with one).
const contrastJS = `(function (sel) {
  function rgb(s) { var m = s.match(/[\d.]+/g).map(Number); return m; }
  function lum(c) {
    var a = c.slice(0, 3).map(function (v) { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * a[0] + 0.7152 * a[1] + 0.0722 * a[2];
  }
  var el = document.querySelector(sel);
  if (!el) { return -1; }
  var fg = rgb(getComputedStyle(el).color), bgEl = el, bg;
  while (bgEl) {
    bg = rgb(getComputedStyle(bgEl).backgroundColor);
    if (bg.length < 4 || bg[3] > 0) { break; }
    bgEl = bgEl.parentElement;
  }
  if (!bgEl) { bg = [255, 255, 255]; }
  var l1 = lum(fg), l2 = lum(bg);
  return (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
})`

// TestBrowserFirstHour: the show-password toggle, focus on the first
// field in error after a refused submit, each error shown once, relative
// times, dark mode contrast, and the profile on a phone with the "From"
// column visible. Screenshots of every page at 1280 and 390 px, light and
// dark, are saved.
func TestBrowserFirstHour(t *testing.T) {
	base, _ := serveApp(t)
	c := newChrome(t)

	// Show password.
	c.do(chromedp.Navigate(base + "/login"))
	if got := get(c, chromedp.Evaluate[string](`document.querySelector('#password').type`)); got != "password" {
		t.Fatalf("password field type %q", got)
	}
	c.do(chromedp.Click(`button.reveal`, chromedp.NodeVisible))
	state := get(c, chromedp.Evaluate[string](`document.querySelector('#password').type + ' ' + document.querySelector('button.reveal').getAttribute('aria-pressed')`))
	if state != "text true" {
		t.Fatalf("after Show: %q", state)
	}
	c.do(chromedp.Click(`button.reveal`, chromedp.NodeVisible))
	if state = get(c, chromedp.Evaluate[string](`document.querySelector('#password').type + ' ' + document.querySelector('button.reveal').getAttribute('aria-pressed')`)); state != "password false" {
		t.Fatalf("after Hide: %q", state)
	}

	// The live hint under a new password follows the server's rules.
	c.do(chromedp.Navigate(base + "/register"))
	for _, tt := range []struct{ typed, want string }{
		{"short", "3 more characters needed."},
		{"password1", "one of the 10,000 most common passwords"},
		{"a truly unusual passphrase", "Long enough, and not a common password."},
	} {
		c.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('password').value = ''; undefined`),
			chromedp.SendKeys(`#password`, tt.typed))
		got := get(c, chromedp.Poll[string](`(function () { var h = document.getElementById('password-strength');
		  return h && h.textContent.indexOf(`+fmt.Sprintf("%q", tt.want)+`) >= 0 ? h.textContent : false; })()`,
			chromedp.WithPollingTimeout(5*time.Second)))
		if !strings.Contains(got, tt.want) {
			t.Errorf("hint for %q: %q, want %q", tt.typed, got, tt.want)
		}
	}

	// A refused registration: focus on the first field in error, and
	// each error once.
	c.do(chromedp.Navigate(base + "/register"))
	c.submitForm(`form[action="/register"]`, map[string]string{"username": "ok_name", "email": "not-an-address", "password": "short"})
	if id := get(c, chromedp.Evaluate[string](`document.activeElement && document.activeElement.id`)); id != "email" {
		t.Errorf("focus after a refused submit on %q, want email", id)
	}
	text := c.text()
	for _, msg := range []string{get(c, chromedp.Text(`#email-error`)), get(c, chromedp.Text(`#password-error`))} {
		if n := strings.Count(text, msg); msg == "" || n != 1 {
			t.Errorf("error %q shown %d times", msg, n)
		}
	}
	if n := get(c, chromedp.Evaluate[int](`document.querySelectorAll('.error[role=alert]').length`)); n != 0 {
		t.Errorf("a banner repeats the field errors")
	}
	c.forgive("status of 422")
	c.checkPage()

	// A real account with some activity, for the profile.
	c.registerUser(base, "alice", "alice@example.com")
	times := get(c, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('time.relative')).map(function (e) { return e.textContent + '|' + e.title + '|' + e.getAttribute('datetime'); })`))
	if len(times) < 4 {
		t.Fatalf("relative times: %v", times)
	}
	for _, v := range times {
		parts := strings.Split(v, "|")
		if len(parts) != 3 || parts[1] == "" || !strings.HasSuffix(parts[2], "Z") ||
			!(strings.Contains(parts[0], "ago") || strings.Contains(parts[0], "now") || strings.Contains(parts[0], "in ") || strings.Contains(parts[0], "day")) {
			t.Errorf("time shown as %q", v)
		}
	}

	// Phone width: the "From" column of the activity stays visible.
	c.view(390, "light")
	c.do(chromedp.Navigate(base + "/profile"))
	visible := get(c, chromedp.Evaluate[bool](`(function () { var td = document.querySelector('.events td:nth-child(3)'); return !!td && getComputedStyle(td).display !== 'none' && td.offsetWidth > 0 && td.offsetHeight > 0; })()`))
	if !visible {
		t.Error(`the "From" column is hidden at 390 px`)
	}
	if over := get(c, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`)); over {
		t.Error("the profile overflows sideways at 390 px")
	}

	// Dark mode: dark background, and text contrast of at least 4.5:1.
	for _, scheme := range []string{"light", "dark"} {
		c.view(1280, scheme)
		c.do(chromedp.Navigate(base + "/profile"))
		bg := get(c, chromedp.Evaluate[string](`getComputedStyle(document.documentElement).backgroundColor`))
		if (scheme == "dark") != (bg != "rgb(244, 246, 248)") {
			t.Errorf("%s: body background %s", scheme, bg)
		}
		for _, sel := range []string{"h1", ".facts dd", ".hint", ".card p", ".bar a", "button", ".badge", ".events td"} {
			ratio := get(c, chromedp.Evaluate[float64](contrastJS+`(`+fmt.Sprintf("%q", sel)+`)`))
			if ratio >= 0 && ratio < 4.5 {
				t.Errorf("%s: contrast of %s is %.2f, below 4.5", scheme, sel, ratio)
			}
		}
	}

	c.checkPage()
	if testing.Short() {
		// The quick check stops here; the full run (and CI) goes on to the
		// 48 screenshots and the overflow check of every page.
		return
	}
	// Screenshots of every page, at both widths, in both schemes.
	pages := map[string]string{"login": "/login", "register": "/register", "forgot": "/password/forgot", "reset": "/password/reset",
		"verify": "/email/verify", "profile": "/profile", "password": "/profile/password", "email": "/profile/email",
		"delete": "/profile/delete", "mfa": "/profile/mfa", "docs": "/docs", "not-found": "/no-such-page"}
	for name, path := range pages {
		for _, width := range []int64{1280, 390} {
			for _, scheme := range []string{"light", "dark"} {
				c.view(width, scheme)
				c.do(chromedp.Navigate(base + path))
				if width == 390 && scheme == "light" {
					if name == "docs" {
						c.do(chromedp.WaitVisible(`.swagger-ui .info`))
					}
					if get(c, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`)) {
						t.Errorf("%s overflows sideways at 390 px", path)
					}
				}
				c.screenshot(fmt.Sprintf("page-%s-%d-%s", name, width, scheme))
			}
		}
	}
	c.forgive("status of 404")
	c.checkPage()
}
