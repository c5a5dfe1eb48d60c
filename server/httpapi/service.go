package httpapi

import (
	"net"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
)

// Endpoint is one mail-client listener as a user types it into a client's settings.
type Endpoint struct {
	Protocol string `json:"protocol"` // "IMAP", "POP3" or "SMTP submission"
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Security string `json:"security"` // "STARTTLS" or "TLS"
}

// Listener is one mail-client listener of the service: Addr as configured, "" or
// unparsable when it is off.
type Listener struct{ Protocol, Addr, Security string }

// Endpoints lists the listeners that are on as the page shows them: a wildcard
// address is reached by the service's hostname.
func Endpoints(hostname string, listeners ...Listener) []Endpoint {
	var out []Endpoint
	for _, l := range listeners {
		host, portText, err := net.SplitHostPort(l.Addr)
		if err != nil {
			continue // off
		}
		port, err := strconv.Atoi(portText)
		if err != nil {
			continue
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			host = hostname
		}
		out = append(out, Endpoint{Protocol: l.Protocol, Host: host, Port: port, Security: l.Security})
	}
	return out
}

type serviceJSON struct {
	Domains        []string   `json:"domains"`
	TTL            int64      `json:"ttl"`     // seconds mail lives by default
	MaxTTL         int64      `json:"max_ttl"` // the longest ttl an inbox may ask for, in seconds
	MaxMessageSize int64      `json:"max_message_size"`
	MailClients    []Endpoint `json:"mail_clients"`
	Replies        bool       `json:"replies"` // POST .../reply sends
}

// service answers GET /api/v1/service: what a page or a client needs to know before
// it creates an inbox, none of it secret.
func (s *Server) service(c echo.Context) error {
	clients := s.opts.MailClients
	if clients == nil {
		clients = []Endpoint{}
	}
	return c.JSON(http.StatusOK, serviceJSON{
		Domains:        s.opts.Domains,
		TTL:            int64(s.opts.TTL.Seconds()),
		MaxTTL:         int64(s.opts.MaxTTL.Seconds()),
		MaxMessageSize: s.opts.MaxMessageSize,
		MailClients:    clients,
		Replies:        s.opts.Replier != nil,
	})
}
