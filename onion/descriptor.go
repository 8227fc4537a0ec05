package onion

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
)

// ErrDescriptorRejected is wrapped by the error of PostDescriptor when tor
// refuses the descriptor (HSPOST answers 554) or the HSDir does (the
// upload fails with REASON=UPLOAD_REJECTED).
var ErrDescriptorRejected = errors.New("onion: descriptor rejected")

// descEvent is an HS_DESC or HS_DESC_CONTENT event for one address.
type descEvent struct {
	action  string // HS_DESC action (UPLOAD, UPLOADED, FAILED, RECEIVED, …) or "CONTENT"
	hsdir   string // HSDir fingerprint, upper-case hex; "" if tor gave none
	reason  string // REASON= of a FAILED event
	content string // descriptor of a CONTENT event, "" if the fetch failed
}

// descWaiter receives the descriptor events of one address, optionally of
// one HSDir.
type descWaiter struct {
	id    string
	hsdir string
	ch    chan descEvent
}

func (s *Server) addDescWaiter(id, hsdir string) *descWaiter {
	w := &descWaiter{id: id, hsdir: hsdir, ch: make(chan descEvent, 32)}
	s.mu.Lock()
	s.descWaiters[w] = struct{}{}
	s.mu.Unlock()
	return w
}

func (s *Server) removeDescWaiter(w *descWaiter) {
	s.mu.Lock()
	delete(s.descWaiters, w)
	s.mu.Unlock()
}

func (s *Server) deliverDesc(id string, ev descEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for w := range s.descWaiters {
		if w.id == id && (w.hsdir == "" || w.hsdir == ev.hsdir) {
			select {
			case w.ch <- ev:
			default: // a waiter that stopped reading loses nothing it needs
			}
		}
	}
}

// descEvent handles "HS_DESC Action HSAddress AuthType HsDir [DescId]
// [REASON=…] …" (the fields of one event line).
func (s *Server) descEvent(f []string) {
	if len(f) < 3 || f[0] != "HS_DESC" {
		return
	}
	ev := descEvent{action: f[1]}
	if len(f) >= 5 {
		ev.hsdir = normHSDir(f[4])
	}
	for _, a := range f[5:min(len(f), 9)] {
		if r, ok := strings.CutPrefix(a, "REASON="); ok {
			ev.reason = r
		}
	}
	s.deliverDesc(f[2], ev)
}

// descContent handles "HS_DESC_CONTENT HSAddress DescId HsDir\r\n<descriptor>".
func (s *Server) descContent(data string) {
	head, body, _ := strings.Cut(data, "\r\n")
	f := strings.Fields(head)
	if len(f) < 4 {
		return
	}
	if body != "" && !strings.HasSuffix(body, "\n") {
		body += "\n" // bine strips the final newline of the data block
	}
	s.deliverDesc(f[1], descEvent{action: "CONTENT", hsdir: normHSDir(f[3]), content: body})
}

// normHSDir turns tor's "$FPR~nick", "$FPR=nick" or "FPR" into upper-case
// FPR; "UNKNOWN" becomes "".
func normHSDir(s string) string {
	s = strings.TrimPrefix(s, "$")
	if i := strings.IndexAny(s, "~="); i >= 0 {
		s = s[:i]
	}
	if s == "UNKNOWN" {
		return ""
	}
	return strings.ToUpper(s)
}

func validHSDir(fpr string) bool {
	if len(fpr) != 40 {
		return false
	}
	for _, c := range fpr {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// serviceIDOf validates an onion address and returns tor's service id.
func serviceIDOf(addr string) (string, error) {
	a, err := ParseAddress(addr)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(a, ".onion"), nil
}

// lockDesc serialises descriptor operations on one address and HSDir.
func (s *Server) lockDesc(ctx context.Context, key string) (unlock func(), err error) {
	s.mu.Lock()
	lock, ok := s.postLocks[key]
	if !ok {
		lock = make(chan struct{}, 1)
		s.postLocks[key] = lock
	}
	s.mu.Unlock()
	select {
	case lock <- struct{}{}:
		return func() { <-lock }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

// FetchDescriptor makes tor fetch the current descriptor of the onion
// service at addr (HSFETCH) and returns it as text, with the fingerprint
// of the HSDir that served it. If hsdir (a relay fingerprint, 40 hex
// digits) is set, tor asks that HSDir; otherwise tor picks one of the
// responsible HSDirs. tor checks the descriptor before handing it over
// (a descriptor it cannot decode is reported as a failed fetch) and keeps
// it in its client cache, so connections through this tor use it.
//
// ctx bounds the wait for the descriptor. Two concurrent calls for the
// same address without an HSDir may both return the first descriptor that
// arrives; calls for one address and HSDir, and PostDescriptor to it, run
// one at a time.
func (s *Server) FetchDescriptor(ctx context.Context, addr, hsdir string) (desc, from string, err error) {
	if err := s.Start(ctx); err != nil {
		return "", "", err
	}
	id, err := serviceIDOf(addr)
	if err != nil {
		return "", "", err
	}
	hsdir = normHSDir(hsdir)
	cmd := "HSFETCH " + id
	if hsdir != "" {
		if !validHSDir(hsdir) {
			return "", "", fmt.Errorf("onion: HSFETCH: bad HSDir fingerprint %q", hsdir)
		}
		cmd += " SERVER=" + hsdir
	}
	if hsdir != "" {
		// One operation per address and HSDir at a time: tor's FAILED
		// events look the same for fetches and uploads.
		unlock, err := s.lockDesc(ctx, id+"/"+hsdir)
		if err != nil {
			return "", "", fmt.Errorf("onion: HSFETCH: %w", err)
		}
		defer unlock()
	}
	w := s.addDescWaiter(id, hsdir)
	defer s.removeDescWaiter(w)
	if _, err := s.request("%s", cmd); err != nil {
		return "", "", fmt.Errorf("onion: HSFETCH: %w", err)
	}
	reason := "no reason given"
	for {
		select {
		case ev := <-w.ch:
			switch ev.action {
			case "FAILED":
				if ev.reason != "" {
					reason = ev.reason
				}
			case "CONTENT":
				if ev.content == "" {
					return "", ev.hsdir, fmt.Errorf("onion: HSFETCH %s from %s: no descriptor (%s)", id, orUnknown(ev.hsdir), reason)
				}
				return ev.content, ev.hsdir, nil
			}
		case <-ctx.Done():
			return "", "", fmt.Errorf("onion: HSFETCH %s: %w", id, context.Cause(ctx))
		case <-s.evDone:
			return "", "", fmt.Errorf("onion: HSFETCH: lost tor control connection: %w", s.evErr)
		case <-s.closed:
			return "", "", fmt.Errorf("onion: %w", net.ErrClosed)
		}
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown HSDir"
	}
	return s
}

// PostDescriptor makes tor upload a descriptor for the service at addr to
// one HSDir (HSPOST SERVER=hsdir HSADDRESS=addr) and waits for the
// HSDir's answer. The error wraps ErrDescriptorRejected when tor refuses
// the descriptor itself or the HSDir rejects it (for example because it
// holds one with the same or a higher revision counter). Uploads for the
// same address and HSDir are serialised: tor's events would not tell them
// apart. ctx bounds the wait; an upload whose circuit fails may produce no
// answer at all, so give ctx a deadline.
func (s *Server) PostDescriptor(ctx context.Context, addr, desc, hsdir string) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	id, err := serviceIDOf(addr)
	if err != nil {
		return err
	}
	hsdir = normHSDir(hsdir)
	if !validHSDir(hsdir) {
		return fmt.Errorf("onion: HSPOST: bad HSDir fingerprint %q", hsdir)
	}
	if strings.Contains(desc, "\r") {
		return errors.New("onion: HSPOST: descriptor contains a carriage return")
	}
	unlock, err := s.lockDesc(ctx, id+"/"+hsdir)
	if err != nil {
		return fmt.Errorf("onion: HSPOST: %w", err)
	}
	defer unlock()
	// Dot-encode the body with CRLF line ends, as the control protocol
	// wants for a multi-line command.
	var b strings.Builder
	b.WriteString("+HSPOST SERVER=" + hsdir + " HSADDRESS=" + id + "\r\n")
	for _, l := range strings.Split(strings.TrimSuffix(desc, "\n"), "\n") {
		if strings.HasPrefix(l, ".") {
			b.WriteByte('.')
		}
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	b.WriteString(".")
	w := s.addDescWaiter(id, hsdir)
	defer s.removeDescWaiter(w)
	if _, err := s.request("%s", b.String()); err != nil {
		if strings.Contains(err.Error(), "554") {
			return fmt.Errorf("%w by tor: HSPOST to %s: %v", ErrDescriptorRejected, hsdir, err)
		}
		return fmt.Errorf("onion: HSPOST to %s: %w", hsdir, err)
	}
	for {
		select {
		case ev := <-w.ch:
			switch ev.action {
			case "UPLOADED":
				return nil
			case "FAILED":
				switch ev.reason {
				case "UPLOAD_REJECTED":
					return fmt.Errorf("%w by the HSDir: HSPOST to %s: %s", ErrDescriptorRejected, hsdir, ev.reason)
				case "UNEXPECTED":
					return fmt.Errorf("onion: HSPOST to %s: upload failed (%s)", hsdir, ev.reason)
				}
				// Other reasons (NOT_FOUND, BAD_DESC, …) come from a fetch
				// of the same address, e.g. HSFETCH without SERVER.
			}
		case <-ctx.Done():
			return fmt.Errorf("onion: HSPOST to %s: %w", hsdir, context.Cause(ctx))
		case <-s.evDone:
			return fmt.Errorf("onion: HSPOST: lost tor control connection: %w", s.evErr)
		case <-s.closed:
			return fmt.Errorf("onion: %w", net.ErrClosed)
		}
	}
}

// GetInfo asks tor for the values of keys (GETINFO), for example
// "consensus/valid-after" or "dir/status-vote/current/consensus-microdesc".
// Multi-line values are returned with their lines joined by "\n". tor
// answers an unknown key with an error.
func (s *Server) GetInfo(ctx context.Context, keys ...string) (map[string]string, error) {
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return map[string]string{}, nil
	}
	for _, k := range keys {
		if k == "" || strings.ContainsAny(k, " \t\r\n") {
			return nil, fmt.Errorf("onion: GETINFO: bad key %q", k)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("onion: GETINFO: %w", err)
	}
	resp, err := s.request("GETINFO %s", strings.Join(keys, " "))
	if err != nil {
		return nil, fmt.Errorf("onion: GETINFO: %w", err)
	}
	out := make(map[string]string, len(keys))
	for _, d := range resp.Data {
		k, v, ok := strings.Cut(d, "=")
		if !ok {
			continue
		}
		out[k] = strings.TrimPrefix(v, "\r\n")
	}
	for _, k := range keys {
		if _, ok := out[k]; !ok {
			return nil, fmt.Errorf("onion: GETINFO: tor gave no value for %s", k)
		}
	}
	return out, nil
}

// GetConf returns the values of one tor option (GETCONF), for example
// "TestingTorNetwork".
func (s *Server) GetConf(ctx context.Context, key string) ([]string, error) {
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	if key == "" || strings.ContainsAny(key, " \t\r\n") {
		return nil, fmt.Errorf("onion: GETCONF: bad key %q", key)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("onion: GETCONF: %w", err)
	}
	kvs, err := s.getConf(key)
	if err != nil {
		return nil, fmt.Errorf("onion: GETCONF %s: %w", key, err)
	}
	var out []string
	for _, kv := range kvs {
		out = append(out, kv.Val)
	}
	return out, nil
}
