// Command signup is the application under test of docs/examples: a sign-up page that
// mails a six-digit code and verifies it, as a thousand real sites do. The Playwright,
// pytest and Go tests beside it each sign up with a Mayfly inbox, read the code from
// Mayfly, and type it back.
//
//	SIGNUP_ADDR=127.0.0.1:8080 SIGNUP_SMTP=127.0.0.1:2525 go run ./docs/examples/signup
package main

import (
	"crypto/rand"
	"fmt"
	"html/template"
	"log"
	"math/big"
	"net/http"
	"net/mail"
	"net/smtp"
	"os"
	"strings"
	"sync"
	"time"
)

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign up</title></head><body>
{{if .Verified}}<p>Welcome, {{.Email}}! Your account is verified.</p>
{{else if .Email}}<form method="post" action="/verify">
<p>We sent a code to {{.Email}}.</p>{{if .Wrong}}<p>That code is not right.</p>{{end}}
<input type="hidden" name="email" value="{{.Email}}">
<label>Code <input name="code" autocomplete="one-time-code"></label>
<button>Verify</button></form>
{{else}}<form method="post" action="/signup">
<label>Email <input name="email" type="email"></label>
<button>Sign up</button></form>{{end}}
</body></html>`))

type view struct {
	Email           string
	Verified, Wrong bool
}

type app struct {
	smtp  string // where the confirmation mail goes: Mayfly's inbound SMTP
	mu    sync.Mutex
	codes map[string]string // email -> the code mailed to it
}

func main() {
	a := &app{smtp: env("SIGNUP_SMTP", "127.0.0.1:2525"), codes: map[string]string{}}
	http.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { a.render(w, view{}) })
	http.HandleFunc("POST /signup", a.signup)
	http.HandleFunc("POST /verify", a.verify)
	addr := env("SIGNUP_ADDR", "127.0.0.1:8080")
	log.Printf("sign-up app on http://%s, mailing through %s", addr, a.smtp)
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

func (a *app) signup(w http.ResponseWriter, r *http.Request) {
	to, err := mail.ParseAddress(r.FormValue("email"))
	if err != nil || strings.ContainsAny(to.Address, "\r\n") {
		http.Error(w, "not an e-mail address", http.StatusBadRequest)
		return
	}
	n, _ := rand.Int(rand.Reader, big.NewInt(1_000_000))
	code := fmt.Sprintf("%06d", n)
	msg := "From: Example <noreply@signup.example>\r\nTo: " + to.Address + "\r\n" +
		"Subject: Your sign-up code\r\nDate: " + time.Now().Format(time.RFC1123Z) + "\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n" +
		"Your verification code is " + code + ".\r\n"
	if err := smtp.SendMail(a.smtp, nil, "noreply@signup.example", []string{to.Address}, []byte(msg)); err != nil {
		http.Error(w, "could not send the code: "+err.Error(), http.StatusBadGateway)
		return
	}
	a.mu.Lock()
	a.codes[to.Address] = code
	a.mu.Unlock()
	a.render(w, view{Email: to.Address})
}

func (a *app) verify(w http.ResponseWriter, r *http.Request) {
	email := r.FormValue("email")
	a.mu.Lock()
	code, ok := a.codes[email]
	a.mu.Unlock()
	if !ok || r.FormValue("code") != code {
		w.WriteHeader(http.StatusUnprocessableEntity)
		a.render(w, view{Email: email, Wrong: true})
		return
	}
	a.render(w, view{Email: email, Verified: true})
}

func (a *app) render(w http.ResponseWriter, v view) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := page.Execute(w, v); err != nil {
		log.Print(err)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
