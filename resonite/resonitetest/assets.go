package resonitetest

import (
	"net/http"
	"strconv"
)

// The asset store: GET /assets/<hash>.<ext> serves what AddAsset stored, so that a test
// points RESONITE_ASSETS_URL at URL+"/assets". Downloads are recorded as calls of Kind
// "assets".

// AssetsURL is the base to give as RESONITE_ASSETS_URL.
func (f *Fake) AssetsURL() string { return f.URL + "/assets" }

// AddAsset stores an asset under its file name ("<hash>.<ext>", as in resdb:///<hash>.<ext>).
func (f *Fake) AddAsset(name, contentType string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.assets == nil {
		f.assets = map[string]asset{}
	}
	f.assets[name] = asset{contentType: contentType, data: append([]byte(nil), data...)}
}

type asset struct {
	contentType string
	data        []byte
}

func (f *Fake) mountAssets(mux *http.ServeMux) {
	mux.HandleFunc("GET /assets/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.record(Call{Kind: "assets", Method: r.Method, Path: r.URL.Path})
		defer f.settled()
		f.mu.Lock()
		a, ok := f.assets[r.PathValue("name")]
		f.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", a.contentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(a.data)))
		_, _ = w.Write(a.data)
	})
}
