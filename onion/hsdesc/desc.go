package hsdesc

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/sha3"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits of the descriptor format as tor enforces them.
const (
	// MaxSize is the largest descriptor tor accepts, in bytes (tor's
	// HS_DESC_MAX_LEN; a descriptor must be shorter).
	MaxSize = 50000
	// MaxIntroPoints is the most introduction points a descriptor may list.
	MaxIntroPoints = 20
	// MaxLifetime is the longest descriptor-lifetime tor accepts.
	MaxLifetime = 12 * time.Hour
	// DefaultLifetime is the descriptor-lifetime tor's services use.
	DefaultLifetime = 3 * time.Hour
)

// Errors a caller may want to tell apart. Parse and Decrypt wrap them.
var (
	// ErrMalformed: the text does not follow the descriptor format.
	ErrMalformed = errors.New("hsdesc: malformed descriptor")
	// ErrBadSignature: a signature or certificate does not verify, or the
	// descriptor is signed by another key than expected.
	ErrBadSignature = errors.New("hsdesc: bad signature")
	// ErrExpired: a certificate has expired.
	ErrExpired = errors.New("hsdesc: expired")
	// ErrWrongKey: the descriptor's blinded key is not the one expected
	// (another service, or another time period).
	ErrWrongKey = errors.New("hsdesc: descriptor for another key or time period")
	// ErrDecrypt: an encrypted layer does not decrypt (wrong key, or
	// corrupted).
	ErrDecrypt = errors.New("hsdesc: cannot decrypt")
)

const (
	sigPrefix         = "Tor onion service descriptor sig v3"
	superencConst     = "hsdir-superencrypted-data"
	encConst          = "hsdir-encrypted-data"
	saltLen           = 16
	macLen            = 32
	superencPadMult   = 10000
	authClientEntries = 16 // tor pads auth-client lines to a multiple of 16
)

// Descriptor is the outer (plaintext) layer of a v3 descriptor: what an
// HSDir sees and checks.
type Descriptor struct {
	Lifetime        time.Duration
	RevisionCounter uint64
	// SigningKeyCert certifies SigningKey with BlindedKey.
	SigningKeyCert *Cert
	SigningKey     ed25519.PublicKey
	BlindedKey     ed25519.PublicKey
	// Superencrypted is the encrypted first layer (salt, ciphertext, MAC).
	Superencrypted []byte
}

// Parse decodes and verifies the outer layer of a descriptor the way an
// HSDir does (hs_desc_decode_plaintext): size, format, version 3,
// lifetime, the signing-key certificate (type, expiry at now, signature by
// the blinded key it carries) and the descriptor signature by the signing
// key. It does not decrypt (see Decrypt).
func Parse(text string, now time.Time) (*Descriptor, error) {
	if len(text) >= MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(text), MaxSize)
	}
	toks, err := tokenize(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(toks) == 0 || toks[0].kw != "hs-descriptor" {
		return nil, fmt.Errorf("%w: does not start with hs-descriptor", ErrMalformed)
	}
	if toks[len(toks)-1].kw != "signature" {
		return nil, fmt.Errorf("%w: does not end with signature", ErrMalformed)
	}
	if err := check(toks, []rule{
		{"hs-descriptor", 1, 1, 1, 1, noObj},
		{"descriptor-lifetime", 1, 1, 1, 1, noObj},
		{"descriptor-signing-key-cert", 1, 1, 0, 0, needObj},
		{"revision-counter", 1, 1, 1, 1, noObj},
		{"superencrypted", 1, 1, 0, 0, needObj},
		{"signature", 1, 1, 1, 1, noObj},
	}, "outer layer"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if v := toks[0].args[0]; v != "3" {
		return nil, fmt.Errorf("%w: version %q, want 3", ErrMalformed, v)
	}
	d := &Descriptor{}
	mins, err := strconv.ParseUint(find(toks, "descriptor-lifetime").args[0], 10, 32)
	if err != nil {
		return nil, fmt.Errorf("%w: bad descriptor-lifetime", ErrMalformed)
	}
	d.Lifetime = time.Duration(mins) * time.Minute
	if d.Lifetime > MaxLifetime {
		return nil, fmt.Errorf("%w: descriptor-lifetime %v over %v", ErrMalformed, d.Lifetime, MaxLifetime)
	}
	ct := find(toks, "descriptor-signing-key-cert")
	if ct.objType != "ED25519 CERT" {
		return nil, fmt.Errorf("%w: signing key certificate is a %q", ErrMalformed, ct.objType)
	}
	c, err := ParseCert(ct.obj)
	if err != nil {
		return nil, fmt.Errorf("%w: signing key certificate: %w", ErrMalformed, err)
	}
	if err := c.Verify(CertTypeSigningKey, nil, now); err != nil {
		return nil, certErr("signing key certificate", err)
	}
	d.SigningKeyCert, d.SigningKey, d.BlindedKey = c, c.CertifiedKey, c.SigningKey
	if d.RevisionCounter, err = strconv.ParseUint(find(toks, "revision-counter").args[0], 10, 64); err != nil {
		return nil, fmt.Errorf("%w: bad revision-counter", ErrMalformed)
	}
	se := find(toks, "superencrypted")
	if se.objType != "MESSAGE" {
		return nil, fmt.Errorf("%w: superencrypted object is a %q", ErrMalformed, se.objType)
	}
	if len(se.obj) <= saltLen+macLen {
		return nil, fmt.Errorf("%w: superencrypted data too short", ErrMalformed)
	}
	d.Superencrypted = se.obj
	sig := toks[len(toks)-1].args[0]
	if len(sig) != 86 {
		return nil, fmt.Errorf("%w: signature is %d characters, want 86", ErrMalformed, len(sig))
	}
	sigBytes, err := base64.RawStdEncoding.DecodeString(sig)
	if err != nil || len(sigBytes) != 64 {
		return nil, fmt.Errorf("%w: signature is not base64", ErrMalformed)
	}
	i := strings.Index(text, "\nsignature ")
	if i < 0 {
		return nil, fmt.Errorf("%w: no signature line", ErrMalformed)
	}
	signed := append([]byte(sigPrefix), text[:i+1]...)
	if !ed25519.Verify(d.SigningKey, signed, sigBytes) {
		return nil, fmt.Errorf("%w: descriptor signature does not verify", ErrBadSignature)
	}
	return d, nil
}

// certErr classifies a certificate verification error.
func certErr(what string, err error) error {
	if strings.Contains(err.Error(), "expired") {
		return fmt.Errorf("%w: %s: %w", ErrExpired, what, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrBadSignature, what, err)
}

// Content is the decrypted content of a descriptor: its second (inner)
// layer, plus what the first layer said.
type Content struct {
	// Create2Formats lists the CREATE2 handshake types (2 is ntor, which
	// tor requires).
	Create2Formats []int
	// IntroAuthRequired lists intro-auth-required types, if the line is
	// present.
	IntroAuthRequired []string
	SingleOnion       bool
	// FlowControl is the flow-control line's arguments ("1-2 31"), empty
	// if absent.
	FlowControl string
	// PoW is the pow-params line, nil if absent.
	PoW *PoWParams
	// IntroPoints are the well-formed introduction points; tor skips
	// malformed ones, and so does Decrypt (see Skipped).
	IntroPoints []IntroPoint
	// Skipped counts introduction points that did not parse or verify.
	Skipped int
	// SkipErrors holds the first few reasons.
	SkipErrors []error
}

// PoWParams is a pow-params line (proof-of-work, proposal 327).
type PoWParams struct {
	Type            string
	Seed            []byte
	SuggestedEffort uint32
	Expires         time.Time
}

// IntroPoint is one introduction point of a descriptor.
type IntroPoint struct {
	// LinkSpecifiers is the encoded link specifier list (the binary form
	// of the introduction-point line).
	LinkSpecifiers []byte
	// OnionKey is the relay's ntor onion key (curve25519).
	OnionKey []byte
	// AuthKey is the introduction point's auth key, certified by the
	// descriptor signing key (auth-key certificate, type 9).
	AuthKey ed25519.PublicKey
	// EncKey is the service's curve25519 encryption key for this
	// introduction point (enc-key ntor).
	EncKey []byte
	// Legacy is true if the entry has a legacy-key (RSA) line; such
	// entries cannot be re-certified by another signing key.
	Legacy bool
}

// Relay returns the hex RSA identity fingerprint of the introduction
// point's relay (from its legacy-id link specifier), or "".
func (ip *IntroPoint) Relay() string {
	for _, ls := range parseLinkSpecifiersLax(ip.LinkSpecifiers) {
		if ls.typ == 2 && len(ls.data) == 20 {
			return strings.ToUpper(fmt.Sprintf("%x", ls.data))
		}
	}
	return ""
}

// Decrypt decrypts both encrypted layers of d for the service with the
// given identity key and parses the content (hs_desc_decode_encrypted).
// The blinded key in d must be identity's for one of the periods listed
// (if none are, any blinded key is accepted and only decryption proves
// it), else the error wraps ErrWrongKey. Introduction points that are
// malformed, or whose certificates do not verify at now against the
// descriptor signing key, are skipped and counted in Content.Skipped, as
// tor skips them; the descriptor is an error only if the layers do not
// decrypt or parse. Client authorization is not supported: a descriptor
// that needs it does not decrypt.
func (d *Descriptor) Decrypt(identity ed25519.PublicKey, now time.Time, p Period, periods ...uint64) (*Content, error) {
	if len(periods) > 0 {
		ok := false
		for _, tp := range periods {
			b, err := BlindPublicKey(identity, tp, p)
			if err != nil {
				return nil, err
			}
			if b.Equal(d.BlindedKey) {
				ok = true
				break
			}
		}
		if !ok {
			return nil, fmt.Errorf("%w: blinded key matches none of time periods %v", ErrWrongKey, periods)
		}
	}
	subcred := Subcredential(identity, d.BlindedKey)
	layer1, err := decryptLayer(d.Superencrypted, d.BlindedKey, subcred, d.RevisionCounter, superencConst)
	if err != nil {
		return nil, fmt.Errorf("%w: first layer: %w", ErrDecrypt, err)
	}
	toks, err := tokenize(layer1)
	if err != nil {
		return nil, fmt.Errorf("%w: first layer: %w", ErrMalformed, err)
	}
	if len(toks) == 0 || toks[0].kw != "desc-auth-type" {
		return nil, fmt.Errorf("%w: first layer does not start with desc-auth-type", ErrMalformed)
	}
	if err := check(toks, []rule{
		{"desc-auth-type", 1, 1, 1, -1, noObj},
		{"desc-auth-ephemeral-key", 1, 1, 1, -1, noObj},
		{"auth-client", 1, -1, 3, -1, noObj},
		{"encrypted", 1, 1, 0, 0, needObj},
	}, "first layer"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if a := toks[0].args[0]; a != "x25519" {
		return nil, fmt.Errorf("%w: desc-auth-type %q", ErrMalformed, a)
	}
	if k, err := decodeBase64(find(toks, "desc-auth-ephemeral-key").args[0]); err != nil || len(k) != 32 {
		return nil, fmt.Errorf("%w: bad desc-auth-ephemeral-key", ErrMalformed)
	}
	for _, t := range toks {
		if t.kw != "auth-client" {
			continue
		}
		for i, n := range []int{8, 16, 16} {
			if b, err := decodeBase64(t.args[i]); err != nil || len(b) != n {
				return nil, fmt.Errorf("%w: line %d: bad auth-client", ErrMalformed, t.line)
			}
		}
	}
	enc := find(toks, "encrypted")
	if enc.objType != "MESSAGE" || len(enc.obj) <= saltLen+macLen {
		return nil, fmt.Errorf("%w: bad encrypted object", ErrMalformed)
	}
	layer2, err := decryptLayer(enc.obj, d.BlindedKey, subcred, d.RevisionCounter, encConst)
	if err != nil {
		return nil, fmt.Errorf("%w: second layer (client authorization is not supported): %w", ErrDecrypt, err)
	}
	return parseInner(layer2, d.SigningKey, now)
}

// parseInner parses the second layer.
func parseInner(text string, signingKey ed25519.PublicKey, now time.Time) (*Content, error) {
	// The part before the first introduction-point is the header;
	// introduction points are split on "\nintroduction-point " as tor does.
	head, ips, _ := strings.Cut(text, "\nintroduction-point ")
	if strings.HasPrefix(text, "introduction-point ") {
		return nil, fmt.Errorf("%w: second layer starts with an introduction point", ErrMalformed)
	}
	toks, err := tokenize(head)
	if err != nil {
		return nil, fmt.Errorf("%w: second layer: %w", ErrMalformed, err)
	}
	if len(toks) == 0 || toks[0].kw != "create2-formats" {
		return nil, fmt.Errorf("%w: second layer does not start with create2-formats", ErrMalformed)
	}
	if err := check(toks, []rule{
		{"create2-formats", 1, 1, 0, -1, noObj},
		{"intro-auth-required", 0, 1, 1, -1, noObj},
		{"single-onion-service", 0, 1, 0, -1, noObj},
		{"flow-control", 0, 1, 2, -1, noObj},
		{"pow-params", 0, 1, 4, -1, noObj},
	}, "second layer"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	c := &Content{}
	ntor := false
	for _, a := range toks[0].args {
		n, err := strconv.ParseUint(a, 10, 16)
		if err != nil || n == 0 {
			continue // tor ignores unparseable values
		}
		c.Create2Formats = append(c.Create2Formats, int(n))
		ntor = ntor || n == 2
	}
	if !ntor {
		return nil, fmt.Errorf("%w: create2-formats does not include ntor (2)", ErrMalformed)
	}
	if t := find(toks, "intro-auth-required"); t != nil {
		c.IntroAuthRequired = t.args
		if !containsPrefix(t.args[:1], "ed25519") {
			return nil, fmt.Errorf("%w: intro-auth-required has no known type", ErrMalformed)
		}
	}
	c.SingleOnion = find(toks, "single-onion-service") != nil
	if t := find(toks, "flow-control"); t != nil {
		inc, err := strconv.ParseUint(t.args[1], 10, 8)
		if err != nil {
			return nil, fmt.Errorf("%w: bad flow-control sendme increment", ErrMalformed)
		}
		c.FlowControl = t.args[0] + " " + strconv.FormatUint(inc, 10)
	}
	if t := find(toks, "pow-params"); t != nil {
		pp, err := parsePoW(t.args)
		if err != nil {
			return nil, err
		}
		c.PoW = pp
	}
	if ips != "" {
		for _, chunk := range strings.Split(ips, "\nintroduction-point ") {
			ip, err := parseIntroPoint("introduction-point "+chunk, signingKey, now)
			if err != nil {
				c.Skipped++
				if len(c.SkipErrors) < 4 {
					c.SkipErrors = append(c.SkipErrors, err)
				}
				continue
			}
			c.IntroPoints = append(c.IntroPoints, *ip)
		}
	}
	if len(c.IntroPoints) > MaxIntroPoints {
		return nil, fmt.Errorf("%w: %d introduction points, at most %d", ErrMalformed, len(c.IntroPoints), MaxIntroPoints)
	}
	return c, nil
}

func containsPrefix(list []string, p string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func parsePoW(args []string) (*PoWParams, error) {
	if !strings.HasPrefix(args[0], "v1") {
		return nil, fmt.Errorf("%w: unknown pow-params type %q", ErrMalformed, args[0])
	}
	seed, err := decodeBase64(args[1])
	if err != nil || len(seed) != 32 {
		return nil, fmt.Errorf("%w: bad pow-params seed", ErrMalformed)
	}
	eff, err := strconv.ParseUint(args[2], 10, 32)
	if err != nil {
		return nil, fmt.Errorf("%w: bad pow-params effort", ErrMalformed)
	}
	exp, err := time.Parse("2006-01-02T15:04:05", args[3])
	if err != nil {
		return nil, fmt.Errorf("%w: bad pow-params expiration", ErrMalformed)
	}
	return &PoWParams{Type: args[0], Seed: seed, SuggestedEffort: uint32(eff), Expires: exp.UTC()}, nil
}

// parseIntroPoint parses and verifies one introduction point entry as tor's
// decode_introduction_point does.
func parseIntroPoint(text string, signingKey ed25519.PublicKey, now time.Time) (*IntroPoint, error) {
	toks, err := tokenize(text)
	if err != nil {
		return nil, fmt.Errorf("%w: introduction point: %w", ErrMalformed, err)
	}
	if err := check(toks, []rule{
		{"introduction-point", 1, 1, 1, 1, noObj},
		{"onion-key", 1, -1, 2, -1, objOK},
		{"auth-key", 1, 1, 0, 0, needObj},
		{"enc-key", 1, 1, 2, -1, objOK},
		{"enc-key-cert", 1, 1, 0, -1, objOK},
		{"legacy-key", 0, 1, 0, -1, needObj},
		{"legacy-key-cert", 0, 1, 0, -1, objOK},
	}, "introduction point"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	ip := &IntroPoint{}
	ls, err := decodeBase64(toks[0].args[0])
	if err != nil {
		return nil, fmt.Errorf("%w: introduction point link specifiers: %w", ErrMalformed, err)
	}
	if err := validateLinkSpecifiers(ls); err != nil {
		return nil, err
	}
	ip.LinkSpecifiers = ls
	for _, t := range toks {
		if t.kw == "onion-key" && t.args[0] == "ntor" {
			k, err := decodeBase64(t.args[1])
			if err != nil || len(k) != 32 {
				return nil, fmt.Errorf("%w: bad ntor onion-key", ErrMalformed)
			}
			ip.OnionKey = k
		}
	}
	if ip.OnionKey == nil {
		return nil, fmt.Errorf("%w: introduction point has no ntor onion-key", ErrMalformed)
	}
	ak := find(toks, "auth-key")
	if ak.objType != "ED25519 CERT" {
		return nil, fmt.Errorf("%w: auth-key object is a %q", ErrMalformed, ak.objType)
	}
	ac, err := ParseCert(ak.obj)
	if err != nil {
		return nil, fmt.Errorf("%w: auth-key certificate: %w", ErrMalformed, err)
	}
	if err := ac.Verify(CertTypeIntroAuth, signingKey, now); err != nil {
		return nil, certErr("auth-key certificate", err)
	}
	ip.AuthKey = ac.CertifiedKey
	ek := find(toks, "enc-key")
	if ek.args[0] != "ntor" {
		return nil, fmt.Errorf("%w: enc-key type %q", ErrMalformed, ek.args[0])
	}
	if ip.EncKey, err = decodeBase64(ek.args[1]); err != nil || len(ip.EncKey) != 32 {
		return nil, fmt.Errorf("%w: bad enc-key", ErrMalformed)
	}
	ec := find(toks, "enc-key-cert")
	if ec.objType != "ED25519 CERT" {
		return nil, fmt.Errorf("%w: enc-key-cert object is a %q", ErrMalformed, ec.objType)
	}
	c, err := ParseCert(ec.obj)
	if err != nil {
		return nil, fmt.Errorf("%w: enc-key-cert: %w", ErrMalformed, err)
	}
	if err := c.Verify(CertTypeIntroEncKey, signingKey, now); err != nil {
		return nil, certErr("enc-key-cert", err)
	}
	ip.Legacy = find(toks, "legacy-key") != nil
	return ip, nil
}

// linkSpec is one link specifier.
type linkSpec struct {
	typ  byte
	data []byte
}

// validateLinkSpecifiers checks the binary link specifier list as tor's
// trunnel parser does: a count, then (type, length, data) items whose known
// types have their exact lengths, and nothing after.
func validateLinkSpecifiers(b []byte) error {
	if len(b) < 1 {
		return fmt.Errorf("%w: empty link specifier list", ErrMalformed)
	}
	n := int(b[0])
	rest := b[1:]
	for range n {
		if len(rest) < 2 {
			return fmt.Errorf("%w: link specifier truncated", ErrMalformed)
		}
		typ, l := rest[0], int(rest[1])
		if len(rest) < 2+l {
			return fmt.Errorf("%w: link specifier truncated", ErrMalformed)
		}
		want := map[byte]int{0: 6, 1: 18, 2: 20, 3: 32}
		if w, ok := want[typ]; ok && w != l {
			return fmt.Errorf("%w: link specifier type %d has length %d, want %d", ErrMalformed, typ, l, w)
		}
		rest = rest[2+l:]
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: bytes after the link specifiers", ErrMalformed)
	}
	if n == 0 {
		return fmt.Errorf("%w: no link specifiers", ErrMalformed)
	}
	return nil
}

func parseLinkSpecifiersLax(b []byte) []linkSpec {
	if len(b) < 1 {
		return nil
	}
	var out []linkSpec
	rest := b[1:]
	for range int(b[0]) {
		if len(rest) < 2 || len(rest) < 2+int(rest[1]) {
			break
		}
		out = append(out, linkSpec{rest[0], rest[2 : 2+int(rest[1])]})
		rest = rest[2+int(rest[1]):]
	}
	return out
}

// layerKeys derives the AES-256-CTR key, IV and MAC key of an encrypted
// layer: SHAKE-256(SECRET_DATA | subcredential | INT_8(revision) | salt |
// constant), 32+16+32 bytes.
func layerKeys(blinded ed25519.PublicKey, subcred [32]byte, rev uint64, salt []byte, constant string) (key, iv, mac []byte) {
	x := sha3.NewSHAKE256()
	x.Write(blinded)
	x.Write(subcred[:])
	var r [8]byte
	binary.BigEndian.PutUint64(r[:], rev)
	x.Write(r[:])
	x.Write(salt)
	x.Write([]byte(constant))
	out := make([]byte, 32+16+32)
	x.Read(out)
	return out[:32], out[32:48], out[48:]
}

// layerMAC is SHA3-256(INT_8(len(mac key)) | mac key | INT_8(len(salt)) |
// salt | ciphertext).
func layerMAC(macKey, salt, ct []byte) []byte {
	h := sha3.New256()
	var l [8]byte
	binary.BigEndian.PutUint64(l[:], uint64(len(macKey)))
	h.Write(l[:])
	h.Write(macKey)
	binary.BigEndian.PutUint64(l[:], uint64(len(salt)))
	h.Write(l[:])
	h.Write(salt)
	h.Write(ct)
	return h.Sum(nil)
}

func decryptLayer(blob, blinded ed25519.PublicKey, subcred [32]byte, rev uint64, constant string) (string, error) {
	if len(blob) <= saltLen+macLen {
		return "", errors.New("encrypted data too short")
	}
	salt, ct, mac := blob[:saltLen], blob[saltLen:len(blob)-macLen], blob[len(blob)-macLen:]
	key, iv, macKey := layerKeys(blinded, subcred, rev, salt, constant)
	if subtle.ConstantTimeCompare(layerMAC(macKey, salt, ct), mac) != 1 {
		return "", errors.New("MAC does not match")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", err
	}
	pt := make([]byte, len(ct))
	cipher.NewCTR(block, iv).XORKeyStream(pt, ct)
	if i := bytes.IndexByte(pt, 0); i >= 0 {
		pt = pt[:i] // padding
	}
	if len(pt) == 0 {
		return "", errors.New("empty plaintext")
	}
	return string(pt), nil
}

func encryptLayer(pt []byte, blinded ed25519.PublicKey, subcred [32]byte, rev uint64, constant string, salt []byte) []byte {
	key, iv, macKey := layerKeys(blinded, subcred, rev, salt, constant)
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("hsdesc: aes: " + err.Error()) // 32-byte key cannot fail
	}
	ct := make([]byte, len(pt))
	cipher.NewCTR(block, iv).XORKeyStream(ct, pt)
	out := append(append([]byte(nil), salt...), ct...)
	return append(out, layerMAC(macKey, salt, ct)...)
}
