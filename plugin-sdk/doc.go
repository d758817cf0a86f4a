// Package sdk is what a synclayer connector plugin is written with. A
// connector is a small program that fetches records from an upstream (an
// API, a database, files) and hands them to the synclayer host, which runs it
// as a separate process. The SDK hides the process boundary: the author
// implements [Connector], calls [Serve] from main, and never sees gRPC or
// protocol types.
//
//	func main() { sdk.Serve(&Shop{}) }
//
//	type Config struct {
//		Shop  string `config:"shop,required" doc:"Shop domain, e.g. demo.myshopify.com."`
//		Token string `config:"access_token,required,sensitive" doc:"Admin API token."`
//		Limit int    `config:"page_size" doc:"Records per page (default 250)."`
//	}
//
//	type Shop struct{}
//
//	func (s *Shop) Describe() sdk.Description {
//		return sdk.Description{
//			Name: "shop", Version: "1.0.0",
//			Config: &Config{},
//			Models: []sdk.Model{{Name: "Product"}},
//			Syncs:  []sdk.SyncSpec{{Name: "products", Models: []string{"Product"}, Every: time.Hour, Incremental: true}},
//		}
//	}
//
//	func (s *Shop) Sync(ctx context.Context, req *sdk.SyncRequest, w *sdk.Writer) error {
//		cfg := Config{Limit: 250} // defaults first ...
//		if err := req.DecodeConfig(&cfg); err != nil { // ... then what the user set
//			return err
//		}
//		since, _ := req.Checkpoint.GetString("updated_at")
//		for page := range fetch(ctx, cfg, since) {
//			if err := w.Save(ctx, "Product", page.Products...); err != nil {
//				return err
//			}
//			if err := w.Checkpoint(ctx, sdk.Checkpoint{"updated_at": page.Last}); err != nil {
//				return err
//			}
//		}
//		return nil
//	}
//
// # Config
//
// The config schema is declared once, as a Go struct whose fields carry
// `config:"name"` tags (options: `config:"name,required"`,
// `config:"name,sensitive"`, both comma-separated) and an optional
// `doc:"..."` description. The host checks the user's config block against
// the schema derived from it and hides sensitive attributes from logs and
// answers; the connector decodes the block with DecodeConfig on any request.
// Go types map to config types as follows: string and time.Duration ("90s",
// "1h") are strings; bool is a bool; ints and floats are numbers; slices and
// string-keyed maps of those are lists and maps; anything else (structs, maps
// of structs, any) is accepted as any value and decoded by the same tag
// rules, nested structs included.
//
// Defaults are plain Go: fill the struct with them, then call DecodeConfig;
// attributes the user did not set keep their value. DecodeConfig fails,
// naming the attribute, on unknown attributes, missing required ones and
// values of the wrong type, and then calls the struct's Validate() error
// method when it has one, for the checks tags cannot express.
//
// # Optional features
//
// A connector gets more capabilities by also implementing
// [ConnectorWithCheck], [ConnectorWithConfiguredModels],
// [ConnectorWithWebhooks] or [ConnectorWithWatch] (ask the host for runs
// when the upstream says something changed); the SDK finds them by type
// assertion.
//
// # Logging and output
//
// The Logger of a [SyncRequest] or [WebhookRequest] reaches the host's log,
// tagged with the layer, source and sync, in order with the records. Other
// loggers write hclog JSON to stderr, which the host reads too. Standard
// output belongs to the plugin handshake: never print to it.
//
// # Helpers
//
// [NewHTTPClient] returns an HTTP client that retries connection errors, 429
// and 5xx answers with exponential backoff and jitter, honours Retry-After
// and keeps to a rate limit; [CheckResponse] and [HTTPError] quote the start
// of an error answer's body. The paginators [CursorPagination],
// [OffsetPagination], [PageNumberPagination] and [LinkPagination] walk
// lists, with [HTTPClient.Paginate] or step by step; a handler checkpoints
// the next page's URL ([Page.Next]) and a retry resumes there with
// [HTTPClient.PaginateFrom]. [Lookup] reads dot paths in decoded JSON.
// [HMACSignature] signs and verifies webhook bodies (hex or base64,
// prefixed forms like "sha256=", constant-time), and [CheckTimestamp]
// rejects stale requests.
//
// # Testing
//
// The package sdktest runs a connector in-process against the real
// protocol, for the connector's own tests, and its Acceptance suite checks
// what every connector owes the host. docs/writing-a-connector.md walks
// from an empty folder to a tested connector.
package sdk
