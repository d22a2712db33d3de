package web_test

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserStarts checks the harness: Chromium starts, opens the page
// the node serves, and has what the client needs (WebCrypto X25519 and Ed25519,
// encoded transforms, a fake camera).
func TestBrowserStarts(t *testing.T) {
	srv := startWebServer(t, nil)
	b := newBrowser(t)
	ctx := b.tab(t, "probe")
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	var caps map[string]any
	err := evaluate(ctx, `(async () => {
		const out = {};
		try { await crypto.subtle.generateKey({name: "X25519"}, false, ["deriveBits"]); out.x25519 = true } catch (e) { out.x25519 = String(e) }
		try { await crypto.subtle.generateKey({name: "Ed25519"}, false, ["sign", "verify"]); out.ed25519 = true } catch (e) { out.ed25519 = String(e) }
		out.scriptTransform = typeof RTCRtpScriptTransform !== "undefined";
		out.encodedStreams = typeof RTCRtpSender !== "undefined" && "createEncodedStreams" in RTCRtpSender.prototype;
		const s = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
		out.tracks = s.getTracks().map(t => t.kind);
		out.ua = navigator.userAgent;
		return out;
	})()`, &caps)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("browser: %v", caps)
	if caps["x25519"] != true || caps["ed25519"] != true || caps["scriptTransform"] != true {
		t.Fatalf("the browser lacks what the client needs: %v", caps)
	}
}
