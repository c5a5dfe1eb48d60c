package imapserver

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/internal/imapwire"
)

// SessionID is an IMAP session which supports ID (RFC 2971).
type SessionID interface {
	Session

	// ID is given what the client told about itself (nil for NIL) and returns
	// what the server tells about itself (nil for NIL). It is called in any
	// state, before authentication too.
	ID(client *imap.IDData) (*imap.IDData, error)
}

// RFC 2971 section 3.3: at most 30 pairs, a field name of at most 30 octets
// and a value of at most 1024.
const (
	maxIDPairs     = 30
	maxIDFieldSize = 30
	maxIDValueSize = 1024
)

func (c *Conn) handleID(dec *imapwire.Decoder) error {
	client, err := readIDParams(dec)
	if err != nil {
		return err
	}
	if !dec.ExpectCRLF() {
		return dec.Err()
	}

	session, ok := c.session.(SessionID)
	if !ok {
		return newClientBugError("ID is not supported")
	}
	server, err := session.ID(client)
	if err != nil {
		return err
	}

	enc := newResponseEncoder(c)
	defer enc.end()
	enc.Atom("*").SP().Atom("ID").SP()
	pairs := idPairs(server)
	if len(pairs) == 0 {
		enc.NIL()
	} else {
		enc.List(len(pairs)/2, func(i int) {
			enc.String(pairs[2*i]).SP().String(pairs[2*i+1])
		})
	}
	return enc.CRLF()
}

func readIDParams(dec *imapwire.Decoder) (*imap.IDData, error) {
	if !dec.ExpectSP() {
		return nil, dec.Err()
	}
	var nilAtom string
	if dec.Atom(&nilAtom) {
		if !dec.Expect(strings.EqualFold(nilAtom, "NIL"), "NIL or list") {
			return nil, dec.Err()
		}
		return nil, nil
	}

	var data imap.IDData
	pairs := 0
	err := dec.ExpectList(func() error {
		var field, value string
		if !dec.ExpectString(&field) || !dec.ExpectSP() || !dec.ExpectNString(&value) {
			return dec.Err()
		}
		pairs++
		if pairs > maxIDPairs || len(field) > maxIDFieldSize || len(value) > maxIDValueSize {
			return newClientBugError("ID parameters too long (RFC 2971 section 3.3)")
		}
		setIDField(&data, strings.ToLower(field), value)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &data, nil
}

func setIDField(data *imap.IDData, field, value string) {
	switch field {
	case "name":
		data.Name = value
	case "version":
		data.Version = value
	case "os":
		data.OS = value
	case "os-version":
		data.OSVersion = value
	case "vendor":
		data.Vendor = value
	case "support-url":
		data.SupportURL = value
	case "address":
		data.Address = value
	case "date":
		data.Date = value
	case "command":
		data.Command = value
	case "arguments":
		data.Arguments = value
	case "environment":
		data.Environment = value
	}
}

// idPairs lists the set fields of data as field, value, field, value...
func idPairs(data *imap.IDData) []string {
	if data == nil {
		return nil
	}
	var pairs []string
	for _, f := range []struct{ name, value string }{
		{"name", data.Name},
		{"version", data.Version},
		{"os", data.OS},
		{"os-version", data.OSVersion},
		{"vendor", data.Vendor},
		{"support-url", data.SupportURL},
		{"address", data.Address},
		{"date", data.Date},
		{"command", data.Command},
		{"arguments", data.Arguments},
		{"environment", data.Environment},
	} {
		if f.value != "" {
			pairs = append(pairs, f.name, f.value)
		}
	}
	return pairs
}
