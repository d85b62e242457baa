package app

import "strings"

// describeAgent turns a User-Agent header into a short label a person can
// recognise, such as "Firefox 133 on Windows" or "curl 8.5". It reads only
// the well-known product tokens; anything else is shown shortened as sent.
func describeAgent(ua string) string {
	ua = strings.TrimSpace(ua)
	if ua == "" {
		return "Unknown client"
	}
	browser := agentBrowser(ua)
	if browser == "" {
		// A program, not a browser: its first product token ("curl/8.5.0").
		name, version, _ := strings.Cut(strings.Fields(ua)[0], "/")
		if major, _, _ := strings.Cut(version, "."); major != "" {
			return shorten(name+" "+major, 60)
		}
		return shorten(name, 60)
	}
	if os := agentOS(ua); os != "" {
		return browser + " on " + os
	}
	return browser
}

// agentBrowser names the browser and its major version, checking the
// tokens that others copy (Chrome claims Safari, Edge claims Chrome) first.
func agentBrowser(ua string) string {
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"},
		{"HeadlessChrome/", "Headless Chrome"}, {"Chromium/", "Chromium"},
		{"Chrome/", "Chrome"}, {"CriOS/", "Chrome"}, {"FxiOS/", "Firefox"},
		{"Version/", "Safari"},
	} {
		if _, rest, ok := strings.Cut(ua, b.token); ok {
			major, _, _ := strings.Cut(rest, ".")
			major, _, _ = strings.Cut(major, " ")
			if major == "" || strings.Trim(major, "0123456789") != "" {
				return b.name
			}
			return b.name + " " + major
		}
	}
	return ""
}

func agentOS(ua string) string {
	for _, o := range []struct{ token, name string }{
		{"Android", "Android"}, {"iPhone", "iPhone"}, {"iPad", "iPad"},
		{"Windows", "Windows"}, {"CrOS", "ChromeOS"}, {"Mac OS X", "macOS"},
		{"Macintosh", "macOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, o.token) {
			return o.name
		}
	}
	return ""
}

// shorten cuts s to at most n runes, marking the cut.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
