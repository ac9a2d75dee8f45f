package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"strconv"
	"strings"
	"time"
)

// port is the SMTP port a channel uses: its own, else the usual one for its security.
func (ch *Channel) port() int {
	switch {
	case ch.Port != 0:
		return ch.Port
	case ch.Security == TLS:
		return 465
	case ch.Security == NoTLS:
		return 25
	}
	return 587
}

// sendMail delivers m over SMTP: STARTTLS (refused when the server does not offer it), implicit TLS,
// or none for a server on this machine; AUTH PLAIN when a username is set (net/smtp refuses it over
// an unencrypted connection to anything but localhost).
func sendMail(ctx context.Context, ch *Channel, m Message) (Receipt, error) {
	addr := net.JoinHostPort(ch.Host, strconv.Itoa(ch.port()))
	d := &net.Dialer{}
	var conn net.Conn
	var err error
	if ch.Security == TLS {
		conn, err = (&tls.Dialer{NetDialer: d, Config: &tls.Config{ServerName: ch.Host}}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return Receipt{}, fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, ch.Host)
	if err != nil {
		return Receipt{}, smtpErr("greeting", err)
	}
	defer c.Close()
	if err := c.Hello("pulse-hub"); err != nil {
		return Receipt{}, smtpErr("EHLO", err)
	}
	if ch.Security == "" || ch.Security == StartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return Receipt{}, &Error{msg: fmt.Sprintf("email: %s does not offer STARTTLS (tls: tls for implicit TLS, or none for a server on this machine)", addr)}
		}
		if err := c.StartTLS(&tls.Config{ServerName: ch.Host}); err != nil {
			return Receipt{}, smtpErr("STARTTLS", err)
		}
	}
	if ch.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", ch.Username, ch.Password, ch.Host)); err != nil {
			return Receipt{}, smtpErr("AUTH", err)
		}
	}
	if err := c.Mail(address(ch.From)); err != nil {
		return Receipt{}, smtpErr("MAIL FROM", err)
	}
	for _, to := range ch.To {
		if err := c.Rcpt(address(to)); err != nil {
			return Receipt{}, smtpErr("RCPT TO "+address(to), err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return Receipt{}, smtpErr("DATA", err)
	}
	if _, err := w.Write(mailMessage(ch, m)); err != nil {
		return Receipt{}, smtpErr("DATA", err)
	}
	if err := w.Close(); err != nil {
		return Receipt{}, smtpErr("end of DATA", err)
	}
	c.Quit()
	return Receipt{Answer: fmt.Sprintf("accepted by %s for %d recipient(s)", addr, len(ch.To))}, nil
}

// smtpErr says which step the server refused; a 5xx answer is permanent.
func smtpErr(step string, err error) error {
	msg := fmt.Sprintf("email: %s: %v", step, err)
	s := err.Error()
	return &Error{Answer: excerpt(s), Permanent: len(s) > 0 && s[0] == '5', msg: msg}
}

// address is the bare address of "Name <a@b>" (what MAIL FROM and RCPT TO take).
func address(a string) string {
	if i, j := strings.LastIndexByte(a, '<'), strings.LastIndexByte(a, '>'); i >= 0 && j > i {
		return a[i+1 : j]
	}
	return strings.TrimSpace(a)
}

// oneLine keeps a header value on its line: a name with a line break must not add headers.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

// mailMessage is the RFC 5322 message: headers, and the text quoted-printable in UTF-8.
func mailMessage(ch *Channel, m Message) []byte {
	var b bytes.Buffer
	id := make([]byte, 12)
	rand.Read(id)
	domain := "pulse.invalid"
	if at := strings.LastIndexByte(address(ch.From), '@'); at >= 0 {
		domain = address(ch.From)[at+1:]
	}
	h := [][2]string{
		{"From", ch.From},
		{"To", strings.Join(ch.To, ", ")},
		{"Subject", mime.QEncoding.Encode("utf-8", Title(m))},
		{"Date", time.Now().Format(time.RFC1123Z)},
		{"Message-ID", "<" + hex.EncodeToString(id) + "@" + domain + ">"},
		{"MIME-Version", "1.0"},
		{"Content-Type", "text/plain; charset=utf-8"},
		{"Content-Transfer-Encoding", "quoted-printable"},
		{"X-Pulse-Alert", m.Alert},
	}
	for _, kv := range h {
		fmt.Fprintf(&b, "%s: %s\r\n", kv[0], oneLine(kv[1]))
	}
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(strings.ReplaceAll(Text(m), "\n", "\r\n")))
	qp.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}
