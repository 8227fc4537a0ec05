// Package hsdesc reads and writes version 3 onion-service descriptors
// (rend-spec-v3), with the key blinding, time periods and HSDir hash ring
// that decide which descriptor goes where.
//
// # Overview
//
// A v3 descriptor has three layers. [Parse] decodes and verifies the
// outer one as an HSDir does: format, lifetime, the descriptor signing
// key's certificate (signed by the service's blinded key for one time
// period) and the signature. [Descriptor.Decrypt] removes the two
// encryption layers with the service's identity key and returns the
// [Content]: the introduction points, each with its certificates checked
// against the descriptor signing key, plus flow-control and proof-of-work
// parameters. [Build] does the reverse: it blinds an identity key for a
// time period, certifies each introduction point under a fresh descriptor
// signing key, encrypts, signs, and checks its own output with Parse and
// Decrypt.
//
// [Period] computes time periods as tor does (from the consensus
// valid-after time, on the real network or a TestingTorNetwork),
// [BlindPublicKey] and [Subcredential] the per-period keys, and [Ring]
// the HSDirs responsible for a blinded key.
//
// The package follows tor 0.4.9's own code (hs_descriptor.c, hs_common.c,
// torcert.c, nodelist.c) and is tested against the vectors of tor's unit
// tests and of Onionbalance, and against tor itself (package
// onion/balance uploads what Build makes to a private Tor network).
//
// # Usage
//
// Read a backend's descriptor fetched from an HSDir:
//
//	d, err := hsdesc.Parse(text, time.Now())
//	if err != nil { … }
//	id, _ := hsdesc.ParseAddress(backendAddress)
//	c, err := d.Decrypt(id, time.Now(), schedule, tp-1, tp, tp+1)
//	if err != nil { … }
//	for _, ip := range c.IntroPoints { … }
//
// Publish introduction points under another key:
//
//	key, _ := hsdesc.NewSigningKey(expandedSecret)
//	text, err := hsdesc.Build(&hsdesc.Spec{
//		Identity: key, Period: tp, Schedule: schedule,
//		RevisionCounter: rev, Content: hsdesc.Content{IntroPoints: ips},
//	})
//
// # Security
//
// Parsers take untrusted input and are fuzzed. A [SigningKey] never
// prints its secret. Errors wrap [ErrMalformed], [ErrBadSignature],
// [ErrExpired], [ErrWrongKey] or [ErrDecrypt] so callers can count
// rejected descriptors by cause; they never contain key material.
//
// Client authorization (restricted discovery) is not supported: such
// descriptors do not decrypt, and Build makes none. Legacy (RSA)
// introduction points cannot be re-certified and are refused by Build.
package hsdesc
