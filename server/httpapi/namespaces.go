package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mayfly-mail/mayfly/server/limit"
	"github.com/mayfly-mail/mayfly/storage"
)

// Namespaces ("Teams", issue 24, docs/teams.md): the admin key creates them, each with
// keys that open the inboxes {name}.*@domain and nothing else.

type namespaceJSON struct {
	Name       string    `json:"name"`
	TTL        string    `json:"ttl"`
	MaxInboxes int       `json:"max_inboxes"`
	MaxBytes   int64     `json:"max_bytes"`
	SendLimit  string    `json:"send_limit"`
	CreatedAt  time.Time `json:"created_at"`
	Keys       []keyJSON `json:"keys"`
	Usage      usageJSON `json:"usage"`
	// Key and KeyID are shown once, when the namespace is created.
	Key   string `json:"key,omitempty"`
	KeyID string `json:"key_id,omitempty"`
}

type keyJSON struct {
	ID         string     `json:"id"`
	Key        string     `json:"key,omitempty"` // shown once, when made
	Prefix     string     `json:"prefix"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"` // null: never used
}

type usageJSON struct {
	Inboxes  int   `json:"inboxes"`
	Messages int   `json:"messages"`
	Bytes    int64 `json:"bytes"`
	Sends    int64 `json:"sends"`
}

func toKeyJSON(k storage.NamespaceKey) keyJSON {
	out := keyJSON{ID: k.ID, Prefix: k.Prefix, CreatedAt: k.Created.UTC()}
	if !k.LastUsed.IsZero() {
		t := k.LastUsed.UTC()
		out.LastUsedAt = &t
	}
	return out
}

func toNamespaceJSON(ns *storage.Namespace) namespaceJSON {
	out := namespaceJSON{
		Name: ns.Name, MaxInboxes: ns.MaxInboxes, MaxBytes: ns.MaxBytes, SendLimit: ns.SendLimit,
		CreatedAt: ns.Created.UTC(), Keys: make([]keyJSON, 0, len(ns.Keys)),
		Usage: usageJSON{Inboxes: ns.Usage.Inboxes, Messages: ns.Usage.Messages, Bytes: ns.Usage.Bytes, Sends: ns.Usage.Sends},
	}
	if ns.TTL > 0 {
		out.TTL = ns.TTL.String()
	}
	for _, k := range ns.Keys {
		out.Keys = append(out.Keys, toKeyJSON(k))
	}
	return out
}

// namespaceKey is where namespaceAuth leaves the namespace of the path.
const namespaceKey = "namespace"

// adminOnly lets through requests with the admin key: 401 without a credential, 403
// with another (a namespace key, an inbox token); wrong ones count at the login gate.
func (s *Server) adminOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		token := bearer(c.Request())
		if token == "" {
			return errorf(http.StatusUnauthorized, "unauthorized", "namespaces are managed with the admin key (MAYFLY_API_KEY): Authorization: Bearer KEY")
		}
		opens, err := s.checkToken(c, token, s.isAdminKey)
		if err != nil {
			return err
		}
		if !opens {
			return errorf(http.StatusForbidden, "forbidden", "namespaces are managed with the admin key (MAYFLY_API_KEY) only")
		}
		return next(c)
	}
}

// namespaceCredential checks that the request's credential is the admin key or a key
// of namespace name; wrong ones count at the login gate.
func (s *Server) namespaceCredential(c echo.Context, name string) error {
	token := bearer(c.Request())
	if token == "" {
		return errorf(http.StatusUnauthorized, "unauthorized", "namespace %s needs one of its keys or the admin key: Authorization: Bearer KEY", name)
	}
	ctx := c.Request().Context()
	opens, err := s.checkToken(c, token, func(token string) bool {
		if s.isAdminKey(token) {
			return true
		}
		got, ok := s.gate().Namespace(ctx, token)
		return ok && got == name
	})
	if err != nil {
		return err
	}
	if !opens {
		return errorf(http.StatusForbidden, "forbidden", "that key does not open namespace %s", name)
	}
	return nil
}

// namespaceAuth lets through requests at /namespaces/{name} with the admin key or a
// key of that namespace; it leaves the namespace for the handlers.
func (s *Server) namespaceAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		name := c.Param("name")
		if !storage.ValidNamespace(name) {
			return errorf(http.StatusNotFound, "not_found", "no namespace %q", name)
		}
		if err := s.namespaceCredential(c, name); err != nil {
			return err
		}
		c.Set(namespaceKey, name)
		return s.revocable(c, next)
	}
}

// namespaceRequest is the body of POST and PATCH /api/v1/namespaces: absent fields are
// not changed by a PATCH.
type namespaceRequest struct {
	Name       string          `json:"name"`
	TTL        json.RawMessage `json:"ttl"`
	MaxInboxes *int            `json:"max_inboxes"`
	MaxBytes   *int64          `json:"max_bytes"`
	SendLimit  *string         `json:"send_limit"`
}

func (s *Server) readNamespaceRequest(c echo.Context) (namespaceRequest, error) {
	var req namespaceRequest
	err := s.decodeBody(c, &req, true, `{"name", "ttl", "max_inboxes", "max_bytes", "send_limit"}`)
	return req, err
}

// apply sets the fields req gives on ns, checked.
func (s *Server) apply(req namespaceRequest, ns *storage.Namespace) error {
	if len(req.TTL) > 0 && string(req.TTL) != "null" && string(req.TTL) != `""` {
		ttl, err := s.parseTTL(req.TTL)
		if err != nil {
			return err
		}
		ns.TTL = ttl
	} else if string(req.TTL) == `""` || string(req.TTL) == "null" {
		ns.TTL = 0
	}
	if req.MaxInboxes != nil {
		if *req.MaxInboxes < 0 {
			return errorf(http.StatusBadRequest, "bad_parameter", "max_inboxes %d: want 0 (no limit) or more", *req.MaxInboxes)
		}
		ns.MaxInboxes = *req.MaxInboxes
	}
	if req.MaxBytes != nil {
		if *req.MaxBytes < 0 {
			return errorf(http.StatusBadRequest, "bad_parameter", "max_bytes %d: want 0 (no limit) or more", *req.MaxBytes)
		}
		ns.MaxBytes = *req.MaxBytes
	}
	if req.SendLimit != nil {
		if *req.SendLimit != "" {
			if _, err := limit.ParseRate(*req.SendLimit); err != nil {
				return errorf(http.StatusBadRequest, "bad_parameter", "send_limit %q: %v", *req.SendLimit, err)
			}
		}
		ns.SendLimit = *req.SendLimit
	}
	return nil
}

// createNamespace answers POST /api/v1/namespaces: the namespace with its first key,
// shown this once.
func (s *Server) createNamespace(c echo.Context) error {
	req, err := s.readNamespaceRequest(c)
	if err != nil {
		return err
	}
	if !storage.ValidNamespace(req.Name) {
		return errorf(http.StatusBadRequest, "bad_name", "name %q: want 1 to 31 lower-case letters, digits and \"-\", not starting with \"-\" (no dot: the addresses are name.anything@domain)", req.Name)
	}
	now := time.Now().UTC()
	ns := storage.Namespace{Name: req.Name, Created: now}
	if err := s.apply(req, &ns); err != nil {
		return err
	}
	key, k := storage.NewNamespaceKey(now)
	err = s.store.CreateNamespace(c.Request().Context(), ns, k)
	if errors.Is(err, storage.ErrExists) {
		return errorf(http.StatusConflict, "name_taken", "namespace %s exists", req.Name)
	}
	if err != nil {
		return err
	}
	s.logger.Info("namespace created", "namespace", ns.Name, "key_id", k.ID)
	ns.Keys = []storage.NamespaceKey{k}
	out := toNamespaceJSON(&ns)
	out.Key, out.KeyID = key, k.ID
	return c.JSON(http.StatusCreated, out)
}

func (s *Server) listNamespaces(c echo.Context) error {
	list, err := s.store.ListNamespaces(c.Request().Context())
	if err != nil {
		return err
	}
	out := struct {
		Namespaces []namespaceJSON `json:"namespaces"`
	}{Namespaces: make([]namespaceJSON, 0, len(list))}
	for i := range list {
		out.Namespaces = append(out.Namespaces, toNamespaceJSON(&list[i]))
	}
	return c.JSON(http.StatusOK, out)
}

// getNamespaceOf returns the namespace, or a 404 naming it.
func (s *Server) getNamespaceOf(ctx context.Context, name string) (*storage.Namespace, error) {
	ns, err := s.store.GetNamespace(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errorf(http.StatusNotFound, "not_found", "no namespace %q", name)
	}
	return ns, err
}

func (s *Server) getNamespace(c echo.Context) error {
	ns, err := s.getNamespaceOf(c.Request().Context(), c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toNamespaceJSON(ns))
}

func (s *Server) patchNamespace(c echo.Context) error {
	req, err := s.readNamespaceRequest(c)
	if err != nil {
		return err
	}
	if req.Name != "" && req.Name != c.Param("name") {
		return errorf(http.StatusBadRequest, "bad_request", "a namespace cannot be renamed: its addresses are name.anything@domain")
	}
	ctx := c.Request().Context()
	ns, err := s.getNamespaceOf(ctx, c.Param("name"))
	if err != nil {
		return err
	}
	if err := s.apply(req, ns); err != nil {
		return err
	}
	if err := s.store.UpdateNamespace(ctx, *ns); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toNamespaceJSON(ns))
}

// deleteNamespace answers DELETE /api/v1/namespaces/{name}: its keys stop opening
// first, on every node, then its mail goes.
func (s *Server) deleteNamespace(c echo.Context) error {
	ctx := c.Request().Context()
	name := c.Param("name")
	inboxes, err := s.store.NamespaceInboxes(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return errorf(http.StatusNotFound, "not_found", "no namespace %q", name)
	}
	if err != nil {
		return err
	}
	if err := s.store.DeleteNamespace(ctx, name); err != nil {
		return err
	}
	for _, inbox := range inboxes {
		if _, err := s.store.DeleteInbox(ctx, inbox); err != nil {
			return err
		}
		s.cache.dropInbox(inbox)
	}
	s.logger.Info("namespace deleted", "namespace", name, "inboxes", len(inboxes))
	return c.NoContent(http.StatusNoContent)
}

// addKey answers POST /api/v1/namespaces/{name}/keys: a new key, shown this once;
// with {"replace": ID} the key of that ID stops opening in the same call.
func (s *Server) addKey(c echo.Context) error {
	var req struct {
		Replace string `json:"replace"`
	}
	if err := s.decodeBody(c, &req, true, `{"replace": "k_..."} or none`); err != nil {
		return err
	}
	name := c.Param("name")
	key, k := storage.NewNamespaceKey(time.Now().UTC())
	err := s.store.AddNamespaceKey(c.Request().Context(), name, k, req.Replace)
	if errors.Is(err, storage.ErrNotFound) {
		return errorf(http.StatusNotFound, "not_found", "no namespace %q, or no key %q in it", name, req.Replace)
	}
	if err != nil {
		return err
	}
	s.logger.Info("namespace key added", "namespace", name, "key_id", k.ID, "replaced", req.Replace)
	out := toKeyJSON(k)
	out.Key = key
	return c.JSON(http.StatusCreated, out)
}

func (s *Server) revokeKey(c echo.Context) error {
	name, id := c.Param("name"), c.Param("id")
	err := s.store.RevokeNamespaceKey(c.Request().Context(), name, id)
	if errors.Is(err, storage.ErrNotFound) {
		return errorf(http.StatusNotFound, "not_found", "no namespace %q, or no key %q in it", name, id)
	}
	if err != nil {
		return err
	}
	s.logger.Info("namespace key revoked", "namespace", name, "key_id", id)
	return c.NoContent(http.StatusNoContent)
}

// activity answers GET /api/v1/activity: mail received, refused and sent, newest
// first, as every node recorded it.
func (s *Server) activity(c echo.Context) error {
	n, err := queryInt(c, "limit", storage.ActivityMax)
	if err != nil {
		return err
	}
	list, err := s.store.Activity(c.Request().Context(), c.QueryParam("namespace"), cmp.Or(n, 100))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string][]storage.Activity{"activity": nonNilSlice(list)})
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// namespaceMessages lists a namespace's mail newest first, with the wait's filters
// that need no parse (to, tag, from, subject, spf, dkim, dmarc, since as a time).
func (s *Server) namespaceMessages(c echo.Context) error {
	limitN, err := queryInt(c, "limit", 10000)
	if err != nil {
		return err
	}
	if limitN == 0 || limitN > maxPage {
		limitN = maxPage
	}
	f, _, _, err := s.parseWait(c)
	if err != nil {
		return err
	}
	msgs, err := s.namespaceMail(c.Request().Context(), c.Get(namespaceKey).(string))
	if err != nil {
		return err
	}
	out := struct {
		Messages []summaryJSON `json:"messages"`
	}{Messages: []summaryJSON{}}
	for i := range msgs {
		if len(out.Messages) == limitN {
			break
		}
		if !f.match(&msgs[i]) {
			continue
		}
		if f.parsedNeeded() {
			// Under the client's MAYFLY_HTTP_MAX_READS_PER_IP, as the wait's parses.
			release, err := s.awaitRead(c)
			if err != nil {
				return err
			}
			p, err := s.parsed(c.Request().Context(), &msgs[i])
			release()
			if err != nil {
				return err
			}
			if !f.matchParsed(p) {
				continue
			}
		}
		sum := toSummary(&msgs[i])
		sum.Inbox = msgs[i].Inbox
		out.Messages = append(out.Messages, sum)
	}
	return c.JSON(http.StatusOK, out)
}

// namespaceMail is every message of a namespace's inboxes, newest first.
func (s *Server) namespaceMail(ctx context.Context, name string) ([]storage.Message, error) {
	inboxes, err := s.store.NamespaceInboxes(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errorf(http.StatusNotFound, "not_found", "no namespace %q", name)
	}
	if err != nil {
		return nil, err
	}
	var all []storage.Message
	for _, inbox := range inboxes {
		list, err := s.store.List(ctx, inbox, storage.Page{})
		if err != nil {
			return nil, err
		}
		all = append(all, list...)
	}
	slices.SortStableFunc(all, func(a, b storage.Message) int { return b.Received.Compare(a.Received) })
	return all, nil
}

// namespaceWait is the inbox's wait across a namespace: every inbox of it, those that
// get their first mail while it waits included (the store reports their events under
// storage.NamespaceWatch).
func (s *Server) namespaceWait(c echo.Context) error {
	f, count, timeout, err := s.parseWait(c)
	if err != nil {
		return err
	}
	none, count, err := parseExpect(c, count)
	if err != nil {
		return err
	}
	name := c.Get(namespaceKey).(string)
	if _, err := s.getNamespaceOf(c.Request().Context(), name); err != nil {
		return err
	}
	return s.waitFor(c, f, count, timeout, none, storage.NamespaceWatch(name), func(ctx context.Context) ([]storage.Message, error) {
		return s.namespaceMail(ctx, name)
	})
}

// deleteNamespaceInboxes answers DELETE /api/v1/namespaces/{name}/inboxes?tag= or
// ?prefix=: the end of a test run. prefix deletes the inboxes whose address starts
// with it (after "name.", which it may leave out); tag deletes the messages with that
// tag, and the inboxes they leave empty.
func (s *Server) deleteNamespaceInboxes(c echo.Context) error {
	ctx := c.Request().Context()
	name := c.Get(namespaceKey).(string)
	tag, prefix := c.QueryParam("tag"), strings.ToLower(c.QueryParam("prefix"))
	if tag == "" && prefix == "" {
		return errorf(http.StatusBadRequest, "bad_parameter", "say what to delete: ?tag=TAG or ?prefix=PREFIX")
	}
	if prefix != "" && !strings.HasPrefix(prefix, name+".") {
		prefix = name + "." + prefix
	}
	inboxes, err := s.store.NamespaceInboxes(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return errorf(http.StatusNotFound, "not_found", "no namespace %q", name)
	}
	if err != nil {
		return err
	}
	var out struct {
		Inboxes  int `json:"deleted_inboxes"`
		Messages int `json:"deleted_messages"`
	}
	for _, inbox := range inboxes {
		if prefix != "" && !strings.HasPrefix(inbox, prefix) {
			continue
		}
		whole := tag == ""
		if !whole {
			list, err := s.store.List(ctx, inbox, storage.Page{})
			if err != nil {
				return err
			}
			tagged := 0
			for i := range list {
				if strings.EqualFold(list[i].Tag, tag) {
					tagged++
				}
			}
			if tagged == 0 {
				continue
			}
			if whole = tagged == len(list); !whole {
				for i := range list {
					if strings.EqualFold(list[i].Tag, tag) {
						if err := s.store.Delete(ctx, inbox, list[i].ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
							return err
						}
						out.Messages++
					}
				}
			}
		}
		if whole {
			n, err := s.store.DeleteInbox(ctx, inbox)
			if err != nil {
				return err
			}
			if err := s.store.ReleaseInbox(ctx, inbox); err != nil {
				return err
			}
			out.Inboxes++
			out.Messages += n
		}
		s.cache.dropInbox(inbox)
	}
	return c.JSON(http.StatusOK, out)
}

// parseExpect reads expect=: with none, the wait asserts no match (see wait).
func parseExpect(c echo.Context, count int) (bool, int, error) {
	switch v := c.QueryParam("expect"); v {
	case "":
		return false, count, nil
	case "none":
		return true, 1, nil
	default:
		return false, 0, errorf(http.StatusBadRequest, "bad_parameter", "expect=%q: want none, or leave expect out", v)
	}
}

// inboxNamespace is the namespace of an inbox POST /api/v1/inboxes creates, nil for
// none. With a namespace key, local (the asked local part) gets its "name." prefix
// when it lacks it, so the key makes no inbox outside its namespace. Without one, a
// local part in an existing namespace takes the admin key: anybody may create a
// chosen inbox and read it with the token they get, which would open a team's mail.
func (s *Server) inboxNamespace(c echo.Context, local *string) (*storage.Namespace, error) {
	ctx := c.Request().Context()
	token := bearer(c.Request())
	if storage.IsNamespaceKey(token) {
		var name string
		opens, err := s.checkToken(c, token, func(token string) bool {
			var ok bool
			name, ok = s.gate().Namespace(ctx, token)
			return ok
		})
		if err != nil {
			return nil, err
		}
		if !opens {
			return nil, errorf(http.StatusForbidden, "forbidden", "that namespace key opens nothing: revoked, or its namespace deleted")
		}
		if *local != "" && !strings.HasPrefix(*local, name+".") {
			*local = name + "." + *local
		}
		return s.getNamespaceOf(ctx, name)
	}
	name := storage.NamespaceOf(*local + "@x")
	if name == "" {
		return nil, nil
	}
	ns, err := s.store.GetNamespace(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if token != "" {
		opens, err := s.checkToken(c, token, s.isAdminKey)
		if err != nil {
			return nil, err
		}
		if opens {
			return ns, nil
		}
	}
	return nil, errorf(http.StatusForbidden, "forbidden", "addresses %s.*@ belong to namespace %s: create them with one of its keys (Authorization: Bearer mfk_...)", name, name)
}

// limitRefusal answers a namespace's limit by name: 403 for max_inboxes, 507 for
// max_bytes, 429 for send_limit.
func limitRefusal(err error) error {
	var le *storage.LimitError
	if !errors.As(err, &le) {
		return err
	}
	status := http.StatusForbidden
	switch le.Limit {
	case "max_bytes":
		status = http.StatusInsufficientStorage
	case "send_limit":
		status = http.StatusTooManyRequests
	}
	return errorf(status, le.Limit, "%s; free some (DELETE /api/v1/namespaces/%s/inboxes?prefix=) or ask the operator to raise %s (PATCH /api/v1/namespaces/%s)", le.Error(), le.Namespace, le.Limit, le.Namespace)
}
