module github.com/onioncdn/onioncdn

go 1.26.0

require (
	github.com/abema/go-mp4 v1.7.1 // indirect
	github.com/asticode/go-astikit v0.30.0 // indirect
	github.com/asticode/go-astits v1.16.0 // indirect
	github.com/bluenviron/gohlslib/v2 v2.4.4 // indirect
	github.com/bluenviron/mediacommon/v2 v2.9.4 // indirect
	github.com/cretz/bine v0.2.1-0.20221201125941-b9d31d9c7866 // indirect
	github.com/google/btree v1.0.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/peterbourgon/diskv/v3 v3.0.1 // indirect
	github.com/pires/go-proxyproto v0.8.1 // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	golang.org/x/sync v0.25.0 // indirect
)
