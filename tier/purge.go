package tier

import (
	"net/http"

	"github.com/onioncdn/onioncdn/purge"
)

// purgeRoute serves purge.DefaultPath from f (serve) or with 404, and
// everything else with h; a tier serving its log marks its responses with
// its position in it (purge.Follower.Mark).
func purgeRoute(h http.Handler, f *purge.Follower, serve bool) http.Handler {
	if serve {
		h = f.Mark(h)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != purge.DefaultPath {
			h.ServeHTTP(w, r)
			return
		}
		if serve {
			f.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	})
}
