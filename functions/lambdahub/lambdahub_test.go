package lambdahub

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdaurl"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/pulsehq/pulse/functions/config"
	"github.com/pulsehq/pulse/functions/hub"
	"github.com/pulsehq/pulse/functions/hubkey"
	"github.com/pulsehq/pulse/functions/store/local"
)

func testHub(t *testing.T) *hub.Hub {
	t.Helper()
	st, err := local.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	h, err := hub.New(context.Background(), hub.Config{Settings: config.Defaults(), Store: st, Keys: &hubkey.Keys{Current: priv}, Function: true})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func urlEvent(method, path string, headers map[string]string) *events.LambdaFunctionURLRequest {
	return &events.LambdaFunctionURLRequest{Version: "2.0", RawPath: path, Headers: headers,
		RequestContext: events.LambdaFunctionURLRequestContext{DomainName: "abc.lambda-url.us-east-1.on.aws",
			HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: method, Path: path, SourceIP: "203.0.113.7"}}}
}

// TestStreamsAsWritten: through lambdaurl's writer, which has neither Flush nor deadlines, Handler's
// Writer lets the hub's stream code flush and clear deadlines without errors, and an event written
// and flushed reaches the function URL's response body while the handler is still running.
func TestStreamsAsWritten(t *testing.T) {
	h := testHub(t)
	release := make(chan struct{})
	var flushErr, deadlineErr error
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		deadlineErr = rc.SetWriteDeadline(time.Time{})
		if err := rc.SetReadDeadline(time.Time{}); err != nil && deadlineErr == nil {
			deadlineErr = err
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "event: first\ndata: {}\n\n")
		flushErr = rc.Flush()
		<-release
		io.WriteString(w, "event: second\ndata: {}\n\n")
	})
	fn := lambdaurl.Wrap(Handler(h, inner))
	resp, err := fn(context.Background(), urlEvent("GET", "/v1/commands/x/events", nil))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Headers["Content-Type"] != "text/event-stream" {
		t.Fatalf("status %d headers %v", resp.StatusCode, resp.Headers)
	}
	br := bufio.NewReader(resp.Body)
	got := make(chan string, 1)
	go func() {
		line, _ := br.ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		if line != "event: first\n" {
			t.Fatalf("first line %q", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first event did not arrive while the handler ran: the response is buffered")
	}
	if flushErr != nil || deadlineErr != nil {
		t.Fatalf("Flush: %v, deadlines: %v; want both accepted", flushErr, deadlineErr)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "event: second") {
		t.Fatalf("rest of the stream: %q", rest)
	}
}

// TestHandlerEdge: forward-auth identity headers are refused with a problem naming the header, and
// every request's context ends deadlineMargin before the invocation's deadline.
func TestHandlerEdge(t *testing.T) {
	h := testHub(t)
	var left time.Duration
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dl, _ := r.Context().Deadline()
		left = time.Until(dl)
		w.WriteHeader(204)
	})
	fn := lambdaurl.Wrap(Handler(h, inner))
	for _, hdr := range forwardHeaders {
		resp, err := fn(context.Background(), urlEvent("GET", "/v1/agents", map[string]string{strings.ToLower(hdr): "mallory"}))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		var p struct {
			Status int    `json:"status"`
			Detail string `json:"detail"`
		}
		if json.Unmarshal(b, &p) != nil || resp.StatusCode != 400 || p.Status != 400 || !strings.Contains(p.Detail, hdr) || resp.Headers["Content-Type"] != "application/problem+json" {
			t.Fatalf("%s: %d %v %s", hdr, resp.StatusCode, resp.Headers, b)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := fn(ctx, urlEvent("GET", "/healthz", nil))
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	if left > 30*time.Second-deadlineMargin || left < 20*time.Second {
		t.Fatalf("request deadline %s away; want about %s", left, 30*time.Second-deadlineMargin)
	}
}

// TestTickEndsBeforeTheDeadline: a tick invocation ticks once a second for its span, and ends
// deadlineMargin before the invocation's deadline when that comes first.
func TestTickEndsBeforeTheDeadline(t *testing.T) {
	h := testHub(t)
	rep, err := Tick(context.Background(), h, 2500*time.Millisecond)
	if err != nil || rep.Ticks != 3 {
		t.Fatalf("a 2.5 s span: %+v %v; want 3 ticks (at 0, 1 and 2 s)", rep, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadlineMargin+1500*time.Millisecond)
	defer cancel()
	rep, err = Tick(ctx, h, 58*time.Second)
	if err != nil || rep.Ticks != 2 || rep.DurationMs > 2000 {
		t.Fatalf("58 s span, deadline in %s: %+v %v; want 2 ticks, ending before the margin", deadlineMargin+1500*time.Millisecond, rep, err)
	}
}

// TestLoadKeys: the key from $PULSE_SIGNING_KEY, from a Secrets Manager secret or an SSM parameter
// (against local stand-ins for the two services' JSON APIs: what AWS itself answers is not tested
// here), and the errors that say what to set or grant.
func TestLoadKeys(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	want := (&hubkey.Keys{Current: priv}).CurrentID()
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := r.Header.Get("X-Amz-Target")
		var in map[string]any
		json.NewDecoder(r.Body).Decode(&in)
		calls = append(calls, target)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		switch {
		case target == "secretsmanager.GetSecretValue" && in["SecretId"] == "pulse/key":
			json.NewEncoder(w).Encode(map[string]any{"Name": "pulse/key", "SecretString": keyPEM})
		case target == "AmazonSSM.GetParameter" && in["Name"] == "/pulse/key" && in["WithDecryption"] == true:
			json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]any{"Name": "/pulse/key", "Type": "SecureString", "Value": keyPEM}})
		case target == "AmazonSSM.GetParameter" && in["Name"] == "/pulse/garbage":
			json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]any{"Name": "/pulse/garbage", "Value": "hunter2"}})
		default:
			w.WriteHeader(400)
			json.NewEncoder(w).Encode(map[string]any{"__type": "AccessDeniedException", "message": "not allowed"})
		}
	}))
	defer srv.Close()
	cfg := awsConfig(srv.URL)
	cases := []struct {
		name, envKey, secret, param string
		errSubstring                string
	}{
		{name: "environment", envKey: keyPEM},
		{name: "secret", secret: "pulse/key"},
		{name: "parameter", param: "/pulse/key"},
		{name: "nothing set", errSubstring: EnvKeySecret},
		{name: "secret refused", secret: "other", errSubstring: "secretsmanager:GetSecretValue"},
		{name: "parameter refused", param: "/other", errSubstring: "ssm:GetParameter"},
		{name: "parameter not a key", param: "/pulse/garbage", errSubstring: "not PEM"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(hubkey.EnvVar, c.envKey)
			t.Setenv(EnvKeySecret, c.secret)
			t.Setenv(EnvKeyParameter, c.param)
			k, err := LoadKeys(context.Background(), &cfg)
			if c.errSubstring != "" {
				if err == nil || !strings.Contains(err.Error(), c.errSubstring) {
					t.Fatalf("err %v; want one naming %q", err, c.errSubstring)
				}
				return
			}
			if err != nil || k.CurrentID() != want {
				t.Fatalf("%v %v; want key %s", k, err, want)
			}
		})
	}
	if len(calls) != 5 {
		t.Fatalf("AWS calls %v; want 5 (none for the environment or for nothing set)", calls)
	}
}

func awsConfig(endpoint string) aws.Config {
	return aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""), RetryMaxAttempts: 1}
}

// TestNewRefusesAStoreWithoutConditionalWrites: function mode's doorbells need If-Match, so a store
// that ignores it (Garage; here the local store behind unconditional+) stops the function at start
// with the reason, and the same store with its conditions works.
func TestNewRefusesAStoreWithoutConditionalWrites(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	keys := &hubkey.Keys{Current: priv}
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.Store = "unconditional+file:" + dir
	if _, err := New(context.Background(), Options{Settings: cfg, Keys: keys}); err == nil || !strings.Contains(err.Error(), "ignores conditional writes") {
		t.Fatalf("function mode on a last-writer-wins store: %v", err)
	}
	cfg.Store = "file:" + dir
	h, err := New(context.Background(), Options{Settings: cfg, Keys: keys})
	if err != nil {
		t.Fatalf("function mode on the local store: %v", err)
	}
	h.Close()
}
