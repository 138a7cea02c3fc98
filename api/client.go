package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Client is the Go client of the API, used by the CLI.
type Client struct {
	base  string // scheme://host:port, no trailing slash
	token string
	hc    *http.Client
}

// ClientOption configures NewClient.
type ClientOption func(*Client)

// WithHTTPClient sets the HTTP client (default: a client without timeout,
// since event streams are long-lived; bound calls with their context).
func WithHTTPClient(hc *http.Client) ClientOption { return func(c *Client) { c.hc = hc } }

// NewClient makes a client for the server at baseURL ("http://127.0.0.1:8645")
// that sends token on every call.
func NewClient(baseURL, token string, opts ...ClientOption) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("api: bad server URL %q", baseURL)
	}
	c := &Client{base: strings.TrimRight(u.Scheme+"://"+u.Host, "/"), token: token, hc: &http.Client{}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// ClientForDataDir makes a client for the daemon running on dataDir: its
// URL from api.url and its token from api.token.
func ClientForDataDir(dataDir string, opts ...ClientOption) (*Client, error) {
	u, err := ReadURL(dataDir)
	if err != nil {
		return nil, err
	}
	tok, err := ReadToken(dataDir)
	if err != nil {
		return nil, err
	}
	return NewClient(u, tok, opts...)
}

// BaseURL is the server's base URL.
func (c *Client) BaseURL() string { return c.base }

func (c *Client) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("api: path %q must start with /", path)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+Prefix+path, body)
	if err != nil {
		return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// Do calls method on path (under /api/v1, e.g. "/status" or
// "/jobs?state=open"), sending in as JSON unless it is nil and decoding a
// 2xx answer into out unless it is nil. A non-2xx answer is an *Error with
// the HTTP status and the server's message and code.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("api: encode %s %s request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return readError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil && !errors.Is(err, io.EOF) {
		// io.EOF: an empty answer (204) leaves out as it is.
		return fmt.Errorf("api: decode %s %s answer: %w", method, path, err)
	}
	return nil
}

// readError turns a non-2xx answer into an *Error, keeping the server's
// message when the body is a JSON error and a bit of the body otherwise.
func readError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &Error{Status: resp.StatusCode}
	if json.Unmarshal(b, e) != nil || e.Message == "" {
		e.Code = strings.ToLower(strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "_"))
		e.Message = strings.TrimSpace(string(b))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "..."
		}
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	return e
}

// Status fetches GET /api/v1/status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.Do(ctx, http.MethodGet, "/status", nil, &st)
	return st, err
}

// Events subscribes to the live event stream. The channel closes when ctx
// ends or the stream does (server shutdown); a notice of type DroppedType
// says the client was too slow and lost events.
func (c *Client) Events(ctx context.Context) (<-chan Event, error) {
	return c.events(ctx, false, 0)
}

// EventsAfter is Events that first replays the events the server still
// retains with an ID greater than after (all retained ones for 0).
func (c *Client) EventsAfter(ctx context.Context, after uint64) (<-chan Event, error) {
	return c.events(ctx, true, after)
}

// maxEventLine bounds one SSE line the client accepts.
const maxEventLine = 4 << 20

func (c *Client) events(ctx context.Context, replay bool, after uint64) (<-chan Event, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/events", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if replay {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(after, 10))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("api: events: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, readError(resp)
	}
	ch := make(chan Event, 64)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		_ = readSSE(resp.Body, func(ev Event) bool {
			select {
			case ch <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	return ch, nil
}

// readSSE parses a Server-Sent Events stream whose data lines are Event
// JSON, calling emit for each event until it returns false or the stream
// ends.
func readSSE(r io.Reader, emit func(Event) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventLine)
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0: // end of an event
			if len(data) > 0 {
				var ev Event
				if err := json.Unmarshal(data, &ev); err != nil {
					return fmt.Errorf("api: bad event %q: %w", data, err)
				}
				if !emit(ev) {
					return nil
				}
			}
			data = data[:0]
		case line[0] == ':': // comment (heartbeat)
		default:
			field, value, _ := bytes.Cut(line, []byte(":"))
			value = bytes.TrimPrefix(value, []byte(" "))
			if string(field) == "data" {
				if len(data) > 0 {
					data = append(data, '\n')
				}
				data = append(data, value...)
			}
			// id and event lines are redundant with the JSON; retry is unused.
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
