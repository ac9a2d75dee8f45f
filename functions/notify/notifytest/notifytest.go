// Package notifytest gives tests real receivers for every channel kind: an HTTP server that records
// what each path was sent (and can fail a path a number of times first), and an SMTP server
// (github.com/emersion/go-smtp) that requires AUTH PLAIN and records the mails. The notify package's
// tests, the hub's and the end-to-end tests use the same ones, so what is asserted is what a service
// would receive.
package notifytest

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Request is one request a Receiver took.
type Request struct {
	Path   string
	Query  string
	Header http.Header
	Body   []byte
}

// Receiver is an HTTP receiver of notifications.
type Receiver struct {
	URL  string
	mu   sync.Mutex
	reqs []Request
	fail map[string]failure
}

type failure struct {
	n      int
	status int
	body   string
}

// NewReceiver starts a receiver that answers 200 to every POST (202 to paths ending in /enqueue, as
// PagerDuty does), until t ends.
func NewReceiver(t testing.TB) *Receiver {
	r := &Receiver{fail: map[string]failure{}}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	f := r.fail[req.URL.Path]
	if f.n > 0 {
		f.n--
		r.fail[req.URL.Path] = f
		r.mu.Unlock()
		http.Error(w, f.body, f.status)
		return
	}
	r.reqs = append(r.reqs, Request{Path: req.URL.Path, Query: req.URL.RawQuery, Header: req.Header.Clone(), Body: b})
	r.mu.Unlock()
	if len(req.URL.Path) >= 8 && req.URL.Path[len(req.URL.Path)-8:] == "/enqueue" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"status":"success","message":"Event processed"}`)
		return
	}
	io.WriteString(w, "ok")
}

// Fail makes the next n requests to path fail with status and body (which may echo a secret, to
// prove it is scrubbed).
func (r *Receiver) Fail(path string, n, status int, body string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail[path] = failure{n: n, status: status, body: body}
}

// Got is what path took so far.
func (r *Receiver) Got(path string) []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Request
	for _, q := range r.reqs {
		if q.Path == path {
			out = append(out, q)
		}
	}
	return out
}

// Wait waits up to timeout for path to have taken n requests and returns them.
func (r *Receiver) Wait(t testing.TB, path string, n int, timeout time.Duration) []Request {
	t.Helper()
	end := time.Now().Add(timeout)
	for {
		got := r.Got(path)
		if len(got) >= n {
			return got
		}
		if time.Now().After(end) {
			t.Fatalf("%s took %d requests in %s, want %d", path, len(got), timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Mail is one message the SMTP server took.
type Mail struct {
	User string // who authenticated
	From string
	To   []string
	Data []byte
}

// SMTP is a real SMTP server on the loopback interface, without TLS, that takes mail only after
// AUTH PLAIN with its one user.
type SMTP struct {
	Host string
	Port int
	mu   sync.Mutex
	mail []Mail
}

// NewSMTP starts an SMTP server for user and password until t ends.
func NewSMTP(t testing.TB, user, password string) *SMTP {
	s := &SMTP{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &session{srv: s, user: user, password: password}, nil
	}))
	srv.Domain, srv.AllowInsecureAuth = "localhost", true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	s.Host = host
	s.Port, _ = strconv.Atoi(port)
	return s
}

// Mails are the messages taken so far.
func (s *SMTP) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mail...)
}

// Wait waits up to timeout for n mails.
func (s *SMTP) Wait(t testing.TB, n int, timeout time.Duration) []Mail {
	t.Helper()
	end := time.Now().Add(timeout)
	for {
		if m := s.Mails(); len(m) >= n {
			return m
		}
		if time.Now().After(end) {
			t.Fatalf("the SMTP server took %d mails in %s, want %d", len(s.Mails()), timeout, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type session struct {
	srv            *SMTP
	user, password string
	authed         string
	cur            Mail
}

var errAuth = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.user || pass != s.password {
			return errors.New("invalid credentials")
		}
		s.authed = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.authed == "" {
		return errAuth
	}
	s.cur = Mail{User: s.authed, From: from}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = b
	s.srv.mu.Lock()
	s.srv.mail = append(s.srv.mail, s.cur)
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.cur = Mail{} }
func (s *session) Logout() error { return nil }
