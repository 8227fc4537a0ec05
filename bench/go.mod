// The benchmark harness is a module of its own, so that "go test ./..." and
// "go vet ./..." at the repository's root leave it out.
module github.com/onioncdn/onioncdn/bench

go 1.22
