// Package funcurl runs a Lambda function's real binary here, without AWS: it serves the Lambda Runtime
// API (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html) that the function's runtime
// loop (aws-lambda-go) talks to, starts one process per concurrent invocation as Lambda starts one
// instance per concurrent request (an instance serves one invocation at a time and is reused after),
// and puts an HTTPS function URL in front that turns each request into a function URL event (payload
// format 2.0: lower-cased headers, base64 bodies, the source IP) and streams the response back as it
// is written (InvokeMode RESPONSE_STREAM: a JSON prelude, eight NUL bytes, then the body).
//
// The Lambda Runtime Interface Emulator would be the obvious choice, but it buffers a streamed
// response whole before answering (aws/aws-lambda-runtime-interface-emulator#175), which would hide
// exactly what long polls and event streams need.
package funcurl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"
)

// Function is one emulated Lambda function: its Runtime API, its instances and, with URL, its function
// URL.
type Function struct {
	t       *testing.T
	name    string
	bin     string
	env     []string
	max     int
	timeout time.Duration
	api     *httptest.Server
	// URL is the function URL (https), when the function was started with one.
	URL string
	// CAFile holds the function URL's certificate, for clients' SSL_CERT_FILE.
	CAFile string
	url    *httptest.Server

	queue     chan *invocation
	mu        sync.Mutex
	running   map[string]*invocation
	instances int
	idle      int // instances waiting in /next
	queued    int // invocations no instance has taken yet
	procs     []*exec.Cmd
	logs      []*bytes.Buffer
	// Invocations counts every invocation; ColdStarts every instance started.
	Invocations, ColdStarts atomic.Int64
}

// invocation is one request to the function.
type invocation struct {
	id       string
	payload  []byte
	deadline time.Time
	// response gets the body the instance posts (its prelude first, for a streamed response); err
	// the error it reports instead.
	response chan io.Reader
	done     chan struct{}
	failed   chan []byte
}

// Options configure Start.
type Options struct {
	// Name is the function's name (AWS_LAMBDA_FUNCTION_NAME).
	Name string
	// Env is the instances' environment beyond the Runtime API's variables.
	Env []string
	// MaxInstances bounds concurrency (default 32): a request beyond it waits for an instance, as
	// throttled Lambda requests do.
	MaxInstances int
	// Timeout is the function's timeout (default 60s): each invocation's deadline.
	Timeout time.Duration
	// URL puts a function URL in front.
	URL bool
}

// Start emulates the function whose bootstrap binary is bin. Instances start on demand and are
// killed when the test ends; their output is logged then if the test failed.
func Start(t *testing.T, bin string, o Options) *Function {
	t.Helper()
	f := &Function{t: t, name: o.Name, bin: bin, env: o.Env, max: o.MaxInstances, timeout: o.Timeout,
		queue: make(chan *invocation, 1024), running: map[string]*invocation{}}
	if f.max == 0 {
		f.max = 32
	}
	if f.timeout == 0 {
		f.timeout = time.Minute
	}
	if f.name == "" {
		f.name = "pulse"
	}
	f.api = httptest.NewServer(http.HandlerFunc(f.runtimeAPI))
	if o.URL {
		f.url = httptest.NewTLSServer(http.HandlerFunc(f.serveURL))
		f.URL = f.url.URL
		f.CAFile = filepath.Join(t.TempDir(), "function-url-ca.pem")
		cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.url.Certificate().Raw})
		if err := os.WriteFile(f.CAFile, cert, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(f.stop)
	return f
}

func (f *Function) stop() {
	if f.url != nil {
		f.url.CloseClientConnections()
		f.url.Close()
	}
	f.mu.Lock()
	procs := f.procs
	f.mu.Unlock()
	for _, p := range procs {
		p.Process.Kill()
		p.Wait()
	}
	f.api.CloseClientConnections()
	f.api.Close()
	if f.t.Failed() {
		for i, l := range f.logs {
			f.t.Logf("--- %s instance %d ---\n%s", f.name, i, l.String())
		}
	}
}

// Instances is how many instances were started.
func (f *Function) Instances() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.instances
}

// invoke queues payload and starts an instance when none is idle.
func (f *Function) invoke(payload []byte) *invocation {
	inv := &invocation{id: uuid.NewString(), payload: payload, deadline: time.Now().Add(f.timeout),
		response: make(chan io.Reader, 1), done: make(chan struct{}), failed: make(chan []byte, 1)}
	f.Invocations.Add(1)
	f.mu.Lock()
	f.running[inv.id] = inv
	f.queued++
	spawn := f.idle < f.queued && f.instances < f.max
	if spawn {
		f.instances++
	}
	f.mu.Unlock()
	if spawn {
		f.spawn()
	}
	f.queue <- inv
	return inv
}

// spawn starts one instance: the function's binary with the Runtime API's address.
func (f *Function) spawn() {
	f.ColdStarts.Add(1)
	cmd := exec.Command(f.bin)
	cmd.Env = append(os.Environ(), f.env...)
	cmd.Env = append(cmd.Env, "AWS_LAMBDA_RUNTIME_API="+strings.TrimPrefix(f.api.URL, "http://"),
		"AWS_LAMBDA_FUNCTION_NAME="+f.name, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256", "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_REGION=us-east-1", "_HANDLER=bootstrap", "LAMBDA_TASK_ROOT="+filepath.Dir(f.bin))
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &syncWriter{w: &log}, &syncWriter{w: &log}
	if err := cmd.Start(); err != nil {
		f.t.Errorf("start an instance of %s: %v", f.name, err)
		return
	}
	f.mu.Lock()
	f.procs = append(f.procs, cmd)
	f.logs = append(f.logs, &log)
	f.mu.Unlock()
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// runtimeAPI is the Lambda Runtime API the instances' runtime loops call.
func (f *Function) runtimeAPI(w http.ResponseWriter, r *http.Request) {
	const base = "/2018-06-01/runtime/"
	path := strings.TrimPrefix(r.URL.Path, base)
	switch {
	case r.Method == http.MethodGet && path == "invocation/next":
		f.mu.Lock()
		f.idle++
		f.mu.Unlock()
		var inv *invocation
		select {
		case inv = <-f.queue:
		case <-r.Context().Done():
		}
		f.mu.Lock()
		f.idle--
		if inv != nil {
			f.queued--
		}
		f.mu.Unlock()
		if inv == nil {
			return
		}
		w.Header().Set("Lambda-Runtime-Aws-Request-Id", inv.id)
		w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.deadline.UnixMilli(), 10))
		w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:"+f.name)
		w.Header().Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
		w.Header().Set("Content-Type", "application/json")
		w.Write(inv.payload)
	case r.Method == http.MethodPost && strings.HasPrefix(path, "invocation/") && strings.HasSuffix(path, "/response"):
		inv := f.take(strings.TrimSuffix(strings.TrimPrefix(path, "invocation/"), "/response"))
		if inv == nil {
			http.Error(w, "no such invocation", http.StatusBadRequest)
			return
		}
		// Hand the body over as it arrives, and answer 202 only once it has all been read.
		pr, pw := io.Pipe()
		inv.response <- pr
		_, err := io.Copy(pw, r.Body)
		if err == nil && r.Trailer.Get("Lambda-Runtime-Function-Error-Type") != "" {
			err = fmt.Errorf("the function failed mid-stream: %s", r.Trailer.Get("Lambda-Runtime-Function-Error-Type"))
		}
		pw.CloseWithError(err)
		close(inv.done)
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPost && strings.HasPrefix(path, "invocation/") && strings.HasSuffix(path, "/error"):
		inv := f.take(strings.TrimSuffix(strings.TrimPrefix(path, "invocation/"), "/error"))
		b, _ := io.ReadAll(r.Body)
		if inv != nil {
			inv.failed <- b
			close(inv.done)
		}
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPost && path == "init/error":
		b, _ := io.ReadAll(r.Body)
		f.t.Errorf("an instance of %s failed to start: %s", f.name, b)
		w.WriteHeader(http.StatusAccepted)
	default:
		http.Error(w, "not a Runtime API call: "+r.Method+" "+r.URL.Path, http.StatusNotFound)
	}
}

func (f *Function) take(id string) *invocation {
	f.mu.Lock()
	defer f.mu.Unlock()
	inv := f.running[id]
	delete(f.running, id)
	return inv
}

// Invoke calls the function with payload and returns its (buffered) response, as a scheduler or
// `aws lambda invoke` does.
func (f *Function) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	inv := f.invoke(payload)
	select {
	case body := <-inv.response:
		return io.ReadAll(body)
	case b := <-inv.failed:
		return nil, fmt.Errorf("%s failed: %s", f.name, b)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// serveURL is the function URL: the request as a function URL event, the streamed response back.
func (f *Function) serveURL(w http.ResponseWriter, r *http.Request) {
	ev, err := event(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	inv := f.invoke(payload)
	var body io.Reader
	select {
	case body = <-inv.response:
	case b := <-inv.failed:
		http.Error(w, "function error: "+string(b), http.StatusBadGateway)
		return
	case <-r.Context().Done():
		return
	}
	br := bufio.NewReader(body)
	prelude, err := readPrelude(br)
	if err != nil {
		http.Error(w, "function response: "+err.Error(), http.StatusBadGateway)
		return
	}
	for k, v := range prelude.Headers {
		w.Header().Set(k, v)
	}
	for _, c := range prelude.Cookies {
		w.Header().Add("Set-Cookie", c)
	}
	w.WriteHeader(prelude.StatusCode)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := br.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

// prelude is the head of a streamed function URL response.
type prelude struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Cookies    []string          `json:"cookies"`
}

// readPrelude reads the JSON prelude and the eight NUL bytes after it.
func readPrelude(br *bufio.Reader) (prelude, error) {
	var head []byte
	zeros := 0
	for zeros < 8 {
		c, err := br.ReadByte()
		if err != nil {
			return prelude{}, fmt.Errorf("the streamed response ended inside its prelude: %w", err)
		}
		if c == 0 {
			zeros++
			continue
		}
		if zeros > 0 {
			return prelude{}, errors.New("a NUL byte inside the prelude")
		}
		head = append(head, c)
	}
	var p prelude
	if err := json.Unmarshal(head, &p); err != nil {
		return prelude{}, fmt.Errorf("prelude %q: %w", head, err)
	}
	if p.StatusCode == 0 {
		p.StatusCode = http.StatusOK
	}
	return p, nil
}

// event turns a request into a function URL event as Lambda builds it (payload format 2.0).
func event(r *http.Request) (*events.LambdaFunctionURLRequest, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 6<<20+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 6<<20 {
		return nil, errors.New("request body over the function URL's 6 MB")
	}
	ev := &events.LambdaFunctionURLRequest{
		Version: "2.0", RawPath: r.URL.EscapedPath(), RawQueryString: r.URL.RawQuery,
		Headers: map[string]string{}, QueryStringParameters: map[string]string{},
		RequestContext: events.LambdaFunctionURLRequestContext{
			AccountID: "anonymous", RequestID: uuid.NewString(), APIID: "emulated", DomainName: r.Host, DomainPrefix: "emulated",
			Time: time.Now().UTC().Format("02/Jan/2006:15:04:05 -0700"), TimeEpoch: time.Now().UnixMilli(),
			HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: r.Method, Path: r.URL.Path, Protocol: r.Proto,
				SourceIP: sourceIP(r), UserAgent: r.UserAgent()},
		},
	}
	for k, v := range r.Header {
		k = strings.ToLower(k)
		if k == "cookie" {
			ev.Cookies = append(ev.Cookies, v...)
			continue
		}
		ev.Headers[k] = strings.Join(v, ",")
	}
	for k, v := range r.URL.Query() {
		ev.QueryStringParameters[k] = strings.Join(v, ",")
	}
	if len(b) > 0 {
		if textual(r.Header.Get("Content-Type")) {
			ev.Body = string(b)
		} else {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(b), true
		}
	}
	return ev, nil
}

// textual is Lambda's rule for bodies passed as text: text/*, JSON, XML, form data; others are
// base64-encoded.
func textual(ct string) bool {
	ct = strings.ToLower(ct)
	for _, p := range []string{"text/", "application/json", "application/problem+json", "application/xml", "application/x-www-form-urlencoded", "application/javascript"} {
		if strings.HasPrefix(ct, p) {
			return true
		}
	}
	return false
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
