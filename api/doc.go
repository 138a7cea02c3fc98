// Package api is the daemon's HTTP JSON API, its live event stream, its
// Prometheus endpoint and the Go client the CLI uses.
//
// The server listens on 127.0.0.1 by default and refuses any non-loopback
// address unless AllowRemote is set. Every mutating call (POST, PUT, PATCH,
// DELETE) needs the bearer token kept in the data directory (api.token, mode
// 0600); without it the answer is 401 and nothing runs. Errors are JSON:
// {"error": "...", "code": "..."}.
//
// Usage: the daemon implements Backend (api never imports node), creates the
// event hub and the server, lets every service add its endpoints, then starts
// it:
//
//	events := api.NewEvents()
//	srv, err := api.New(backend,
//		api.WithDataDir(home), api.WithEvents(events), api.WithRegistry(reg))
//	// services add endpoints under /api/v1 before Start:
//	srv.Handle(api.Route{Method: "POST", Path: "/jobs", Handler: api.JSON(submitJob)})
//	err = srv.Start()
//	defer srv.Shutdown(ctx)
//	events.Publish("job.submitted", job) // from any goroutine; never blocks
//
// The CLI talks to a running daemon with ClientForDataDir(home), which reads
// the address the server wrote to api.url and the token from api.token.
//
// Routes:
//
//	GET  /api/v1/status   Status of the node
//	GET  /api/v1/events   Server-Sent Events; ?replay=1 or Last-Event-ID replays retained events
//	GET  /metrics         Prometheus metrics of the registry given to New
package api
