package onion

import (
	"strings"
	"testing"

	"github.com/onioncdn/onioncdn/internal/onionaddr"
)

// A valid address, written by tor (testdata/torkey/hostname).
const torAddr = "stojaiia2i7g4exolvj4tfhmks2mpdjsez6fjfleabqrzwbftlucyvyd.onion"

func TestParseAddress(t *testing.T) {
	id := strings.TrimSuffix(torAddr, ".onion")
	// Flip one character: the checksum no longer matches.
	badSum := "a" + id[1:]
	// Same public key and checksum, version byte changed: the last
	// character encodes the low bits of the version.
	badVersion := id[:55] + "a"
	tests := []struct {
		name, in, want, wantErr string
	}{
		{name: "canonical", in: torAddr, want: torAddr},
		{name: "no_suffix", in: id, want: torAddr},
		{name: "upper_case", in: strings.ToUpper(torAddr), want: torAddr},
		{name: "subdomain", in: "www." + torAddr, want: torAddr},
		{name: "empty", in: "", wantErr: "0 characters"},
		{name: "just_suffix", in: ".onion", wantErr: "0 characters"},
		{name: "short", in: id[:55] + ".onion", wantErr: "55 characters"},
		{name: "long", in: id + "a.onion", wantErr: "57 characters"},
		{name: "v2", in: "expyuzz4wqqyqhjn.onion", wantErr: "v2 onion"},
		{name: "not_base32", in: id[:10] + "1" + id[11:], wantErr: "not base32"},
		{name: "not_base32_upper_8", in: id[:10] + "8" + id[11:], wantErr: "not base32"},
		{name: "bad_checksum", in: badSum, wantErr: "checksum"},
		{name: "bad_version", in: badVersion, wantErr: "version"},
		{name: "other_tld", in: id + ".com", wantErr: "not a .onion"},
		{name: "with_port", in: torAddr + ":80", wantErr: "not a .onion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAddress(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseAddress(%q) = %q, want error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "onion: ") {
					t.Fatalf("ParseAddress(%q) error %q, want it to contain %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseAddress(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseAddressGenerated(t *testing.T) {
	for range 50 {
		k, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseAddress(k.Address())
		if err != nil || got != k.Address() {
			t.Fatalf("ParseAddress(%s) = %q, %v", k.Address(), got, err)
		}
	}
}

func FuzzParseAddress(f *testing.F) {
	f.Add(torAddr)                  // valid, from tor
	f.Add(strings.ToUpper(torAddr)) // valid, upper case
	f.Add("www." + torAddr)         // valid with subdomain
	f.Add(torAddr[:56])             // valid without suffix
	f.Add("a" + torAddr[1:])        // checksum mismatch
	f.Add(torAddr[:55] + "a")       // wrong version
	f.Add("expyuzz4wqqyqhjn.onion") // v2 address
	f.Add("")                       // empty
	f.Add(".onion")                 // suffix only
	f.Add("..onion")                // empty labels
	f.Add(strings.Repeat("7", 56))  // base32 but bad version/checksum
	f.Add(torAddr + ":443")         // host:port
	f.Add("\x00\xff.onion")         // binary junk
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseAddress(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "onion: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		// Normal form: 56 lower-case characters plus ".onion", and a fixed
		// point of ParseAddress.
		if len(got) != AddressLen+len(".onion") || got != strings.ToLower(got) || !strings.HasSuffix(got, ".onion") {
			t.Fatalf("ParseAddress(%q) = %q, not normalised", s, got)
		}
		again, err := ParseAddress(got)
		if err != nil || again != got {
			t.Fatalf("ParseAddress(%q) = %q, %v; not a fixed point", got, again, err)
		}
		// The address decodes to a public key whose derived address is the
		// same: the round trip with Key.Address's encoding.
		pub, err := onionaddr.Decode(got[:AddressLen])
		if err != nil {
			t.Fatal(err)
		}
		if serviceID(pub)+".onion" != got {
			t.Fatalf("re-encoding %q gives %q", got, serviceID(pub))
		}
	})
}

// FuzzParseKeyFile checks that arbitrary key files never panic and that
// accepted files round-trip through MarshalFile and ParseAddress.
func FuzzParseKeyFile(f *testing.F) {
	k, _ := GenerateKey()
	f.Add(k.MarshalFile())                  // valid
	f.Add([]byte(keyFileHeader))            // header only
	f.Add(k.MarshalFile()[:50])             // truncated
	f.Add([]byte("== ed25519v1-public: x")) // wrong header
	f.Add([]byte{})                         // empty
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKeyFile(data)
		if err != nil {
			return
		}
		if string(k.MarshalFile()) != string(data) {
			t.Fatal("MarshalFile does not reproduce the parsed file")
		}
		if _, err := ParseAddress(k.Address()); err != nil {
			t.Fatalf("derived address invalid: %v", err)
		}
	})
}
