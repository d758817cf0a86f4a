package main

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Page types of PageConfig.Type.
const (
	PageCursor = "cursor"
	PageOffset = "offset"
	PageNumber = "page"
	PageLink   = "link"
)

// Config is the connector's configuration (SPEC §11 rest).
type Config struct {
	BaseURL       string                  `config:"base_url,required" doc:"Root URL of the API; each model's path is appended to it."`
	Headers       map[string]string       `config:"headers,sensitive" doc:"Headers sent with every request, e.g. { Authorization = \"Bearer …\" }."`
	WebhookSecret string                  `config:"webhook_secret,sensitive" doc:"Enables payload webhooks (POST /hooks/sources/{layer}/{source}), which must then carry X-Signature-256: sha256=<hex HMAC-SHA256 of the body>. Without it that path answers 404."`
	Models        map[string]*ModelConfig `config:"models,required" doc:"One entry per model: { path, records, id, updated_at, since_param, page }. Each model is a sync of the same name."`
}

// ModelConfig is one model's endpoint.
type ModelConfig struct {
	Path       string      `config:"path,required" doc:"Path of the list endpoint, appended to base_url; may carry a query."`
	Records    string      `config:"records" doc:"Dot path to the array of records in the answer; \"\" (default) means the answer is the array."`
	ID         string      `config:"id" doc:"Dot path to a record's id (default \"id\"); numbers become strings."`
	UpdatedAt  string      `config:"updated_at" doc:"Dot path to a record's last-modified time; enables incremental runs."`
	SinceParam string      `config:"since_param" doc:"Query parameter that incremental runs set to the highest updated_at seen."`
	Page       *PageConfig `config:"page" doc:"Pagination: { type = cursor|offset|page|link, param, next, limit_param, limit }."`
}

// PageConfig is a model's pagination.
type PageConfig struct {
	Type       string `config:"type,required" doc:"cursor: ?<param>=<value at next> until next is empty; offset: ?<param>=N&<limit_param>=<limit> until a short page; page: ?<param>=1,2,… until an empty page; link: follow the Link header's rel=\"next\"."`
	Param      string `config:"param" doc:"Query parameter of the cursor, offset or page number (defaults: cursor, offset, page)."`
	Next       string `config:"next" doc:"cursor: dot path to the next cursor in the answer."`
	LimitParam string `config:"limit_param" doc:"Query parameter of the page size."`
	Limit      int    `config:"limit" doc:"Page size to ask for (sent as limit_param); with offset and page, a shorter page is the last."`
}

// Validate is called by DecodeConfig: it fills defaults and checks what
// tags cannot.
func (c *Config) Validate() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("base_url %q must be an absolute http or https URL", c.BaseURL)
	}
	if len(c.Models) == 0 {
		return errors.New("models must name at least one model")
	}
	for _, name := range c.modelNames() {
		m := c.Models[name]
		if m == nil {
			return fmt.Errorf("models.%s must be an object", name)
		}
		if strings.TrimSpace(m.Path) == "" {
			return fmt.Errorf("models.%s.path must not be empty", name)
		}
		if m.ID == "" {
			m.ID = "id"
		}
		if m.SinceParam != "" && m.UpdatedAt == "" {
			return fmt.Errorf("models.%s: since_param needs updated_at (the attribute whose highest value it sends)", name)
		}
		if p := m.Page; p != nil {
			switch p.Type {
			case PageCursor:
				if p.Param == "" {
					p.Param = "cursor"
				}
				if p.Next == "" {
					return fmt.Errorf("models.%s.page: type \"cursor\" needs next, the dot path of the next cursor in the answer", name)
				}
			case PageOffset:
				if p.Param == "" {
					p.Param = "offset"
				}
			case PageNumber:
				if p.Param == "" {
					p.Param = "page"
				}
			case PageLink:
			default:
				return fmt.Errorf("models.%s.page.type %q must be one of cursor, offset, page, link", name, p.Type)
			}
			if p.Limit < 0 {
				return fmt.Errorf("models.%s.page.limit must not be negative", name)
			}
			if p.Limit > 0 && p.LimitParam == "" {
				return fmt.Errorf("models.%s.page: limit needs limit_param, the query parameter that carries it", name)
			}
		}
	}
	return nil
}

func (c *Config) modelNames() []string {
	names := make([]string, 0, len(c.Models))
	for n := range c.Models {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// listURL is base_url with the model's path appended (not resolved: a
// base_url of http://host/api and a path of /posts give
// http://host/api/posts).
func (c *Config) listURL(m *ModelConfig) (*url.URL, error) {
	raw := strings.TrimRight(c.BaseURL, "/") + "/" + strings.TrimLeft(m.Path, "/")
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("path %q: %w", m.Path, err)
	}
	return u, nil
}
