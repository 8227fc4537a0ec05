package hsdesc

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Spec is the input of Build: which service, which time period, which
// revision, and the content to publish.
type Spec struct {
	// Identity is the service's identity key (see NewSigningKey). Required.
	Identity *SigningKey
	// Period is the time period number the descriptor is for, and
	// Schedule the network's schedule (zero: the real network's).
	Period   uint64
	Schedule Period
	// RevisionCounter orders descriptors: an HSDir replaces its copy only
	// with a strictly higher one.
	RevisionCounter uint64
	// Lifetime is the descriptor-lifetime. If zero, DefaultLifetime (3 h).
	Lifetime time.Duration
	// Now dates the certificates (valid for CertLifetime from Now). If
	// zero, time.Now().
	Now time.Time
	// Content is what the descriptor says. Its introduction points are
	// re-certified with a fresh descriptor signing key; their certificates
	// in the input are not used. If Content.Create2Formats is empty, [2]
	// (ntor). IntroAuthRequired, Skipped and SkipErrors are ignored.
	Content Content
}

// Build encodes, encrypts and signs a v3 descriptor as tor's service does
// (hs_desc_encode_descriptor), and checks the result with Parse and
// Decrypt before returning it, so that it never returns a descriptor its
// own parser (which follows tor's) would refuse. Client authorization is
// not supported: the first layer carries 16 random auth-client entries, as
// tor's services without client authorization publish.
func Build(s *Spec) (string, error) {
	if s.Identity == nil {
		return "", errors.New("hsdesc: build: no identity key")
	}
	if len(s.Content.IntroPoints) > MaxIntroPoints {
		return "", fmt.Errorf("hsdesc: build: %d introduction points, at most %d", len(s.Content.IntroPoints), MaxIntroPoints)
	}
	r := rand.Reader
	now := s.Now
	if now.IsZero() {
		now = time.Now()
	}
	lifetime := s.Lifetime
	if lifetime == 0 {
		lifetime = DefaultLifetime
	}
	if lifetime < time.Minute || lifetime > MaxLifetime {
		return "", fmt.Errorf("hsdesc: build: lifetime %v out of range", lifetime)
	}
	blinded := s.Identity.Blind(s.Period, s.Schedule)
	subcred := Subcredential(s.Identity.public[:], blinded.public[:])
	_, sigPriv, err := ed25519.GenerateKey(r)
	if err != nil {
		return "", fmt.Errorf("hsdesc: build: %w", err)
	}
	signing := signingKeyFromStd(sigPriv)

	inner, err := innerPlaintext(&s.Content, signing, now)
	if err != nil {
		return "", err
	}
	salt := make([]byte, saltLen)
	if _, err := io.ReadFull(r, salt); err != nil {
		return "", fmt.Errorf("hsdesc: build: %w", err)
	}
	innerBlob := encryptLayer([]byte(inner), blinded.public[:], subcred, s.RevisionCounter, encConst, salt)

	var l1 strings.Builder
	l1.WriteString("desc-auth-type x25519\n")
	eph, err := ecdh.X25519().GenerateKey(r)
	if err != nil {
		return "", fmt.Errorf("hsdesc: build: %w", err)
	}
	l1.WriteString("desc-auth-ephemeral-key " + base64.StdEncoding.EncodeToString(eph.PublicKey().Bytes()) + "\n")
	fake := make([]byte, 8+16+16)
	for range authClientEntries {
		if _, err := io.ReadFull(r, fake); err != nil {
			return "", fmt.Errorf("hsdesc: build: %w", err)
		}
		e := base64.RawStdEncoding.EncodeToString
		l1.WriteString("auth-client " + e(fake[:8]) + " " + e(fake[8:24]) + " " + e(fake[24:]) + "\n")
	}
	l1.WriteString("encrypted\n-----BEGIN MESSAGE-----\n" + base64Lines(innerBlob) + "-----END MESSAGE-----")
	padded := make([]byte, (l1.Len()+superencPadMult-1)/superencPadMult*superencPadMult)
	copy(padded, l1.String())
	if _, err := io.ReadFull(r, salt); err != nil {
		return "", fmt.Errorf("hsdesc: build: %w", err)
	}
	outerBlob := encryptLayer(padded, blinded.public[:], subcred, s.RevisionCounter, superencConst, salt)

	var b strings.Builder
	b.WriteString("hs-descriptor 3\n")
	b.WriteString("descriptor-lifetime " + strconv.FormatInt(int64(lifetime/time.Minute), 10) + "\n")
	b.WriteString("descriptor-signing-key-cert\n" + pem("ED25519 CERT", newCert(CertTypeSigningKey, signing.public[:], now.Add(CertLifetime), blinded)) + "\n")
	b.WriteString("revision-counter " + strconv.FormatUint(s.RevisionCounter, 10) + "\n")
	b.WriteString("superencrypted\n-----BEGIN MESSAGE-----\n" + base64Lines(outerBlob) + "-----END MESSAGE-----\n")
	sig := signing.Sign(append([]byte(sigPrefix), b.String()...))
	b.WriteString("signature " + base64.RawStdEncoding.EncodeToString(sig) + "\n")
	text := b.String()
	if len(text) >= MaxSize {
		return "", fmt.Errorf("hsdesc: build: descriptor is %d bytes, tor's limit is %d (fewer introduction points)", len(text), MaxSize)
	}

	// Check the result as tor's HSDirs and clients will.
	d, err := Parse(text, now)
	if err != nil {
		return "", fmt.Errorf("hsdesc: build: own descriptor does not parse: %w", err)
	}
	c, err := d.Decrypt(s.Identity.public[:], now, s.Schedule, s.Period)
	if err != nil {
		return "", fmt.Errorf("hsdesc: build: own descriptor does not decrypt: %w", err)
	}
	if c.Skipped != 0 || len(c.IntroPoints) != len(s.Content.IntroPoints) {
		return "", fmt.Errorf("hsdesc: build: own descriptor lost introduction points: %v", c.SkipErrors)
	}
	return text, nil
}

// innerPlaintext encodes the second layer, re-certifying each
// introduction point with signing.
func innerPlaintext(c *Content, signing *SigningKey, now time.Time) (string, error) {
	var b strings.Builder
	formats := c.Create2Formats
	if len(formats) == 0 {
		formats = []int{2}
	}
	b.WriteString("create2-formats")
	for _, f := range formats {
		b.WriteString(" " + strconv.Itoa(f))
	}
	b.WriteString("\n")
	if c.SingleOnion {
		b.WriteString("single-onion-service\n")
	}
	if c.FlowControl != "" {
		if f := strings.Fields(c.FlowControl); len(f) != 2 {
			return "", fmt.Errorf("hsdesc: build: flow-control %q is not two fields", c.FlowControl)
		}
		b.WriteString("flow-control " + c.FlowControl + "\n")
	}
	if p := c.PoW; p != nil {
		if len(p.Seed) != 32 {
			return "", errors.New("hsdesc: build: pow-params seed must be 32 bytes")
		}
		typ := p.Type
		if typ == "" {
			typ = "v1"
		}
		b.WriteString("pow-params " + typ + " " + base64.StdEncoding.EncodeToString(p.Seed) + " " +
			strconv.FormatUint(uint64(p.SuggestedEffort), 10) + " " + p.Expires.UTC().Format("2006-01-02T15:04:05") + "\n")
	}
	certExp := now.Truncate(time.Hour).Add(CertLifetime)
	for i := range c.IntroPoints {
		ip := &c.IntroPoints[i]
		if ip.Legacy {
			return "", fmt.Errorf("hsdesc: build: introduction point %d has a legacy (RSA) key, which cannot be re-certified", i)
		}
		if err := validateLinkSpecifiers(ip.LinkSpecifiers); err != nil {
			return "", fmt.Errorf("hsdesc: build: introduction point %d: %w", i, err)
		}
		if len(ip.OnionKey) != 32 || len(ip.AuthKey) != 32 || len(ip.EncKey) != 32 {
			return "", fmt.Errorf("hsdesc: build: introduction point %d: keys must be 32 bytes", i)
		}
		encEd, err := ed25519FromCurve25519(ip.EncKey, 0)
		if err != nil {
			return "", fmt.Errorf("hsdesc: build: introduction point %d: %w", i, err)
		}
		b.WriteString("introduction-point " + base64.StdEncoding.EncodeToString(ip.LinkSpecifiers) + "\n")
		b.WriteString("onion-key ntor " + base64.StdEncoding.EncodeToString(ip.OnionKey) + "\n")
		b.WriteString("auth-key\n" + pem("ED25519 CERT", newCert(CertTypeIntroAuth, ip.AuthKey, certExp, signing)) + "\n")
		b.WriteString("enc-key ntor " + base64.StdEncoding.EncodeToString(ip.EncKey) + "\n")
		b.WriteString("enc-key-cert\n" + pem("ED25519 CERT", newCert(CertTypeIntroEncKey, encEd, certExp, signing)) + "\n")
	}
	return b.String(), nil
}
