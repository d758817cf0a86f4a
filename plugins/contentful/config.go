package main

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Defaults of Config.
const (
	DefaultBaseURL     = "https://cdn.contentful.com"
	DefaultEnvironment = "master"
)

// Config is the connector's configuration (SPEC §11 contentful).
type Config struct {
	SpaceID       string `config:"space_id,required" doc:"Id of the Contentful space (Settings → General settings)."`
	Environment   string `config:"environment" doc:"Environment to read (default \"master\")."`
	AccessToken   string `config:"access_token,required,sensitive" doc:"Content Delivery API token of an API key that can read the environment (Settings → API keys)."`
	BaseURL       string `config:"base_url" doc:"Root of the Content Delivery API (default https://cdn.contentful.com; https://cdn.eu.contentful.com for the EU data residency)."`
	Locale        string `config:"locale" doc:"When set, each localized field holds the value of this locale (with the locale's fallbacks) instead of a map of every locale."`
	WebhookSecret string `config:"webhook_secret,sensitive" doc:"The space's webhook signing secret; when set, payload webhooks verified with it start an incremental run. Empty: payload webhooks are refused."`
}

// idPattern is what Contentful allows in space, environment and content
// type ids.
var idPattern = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,64}$`)

// Validate is called by DecodeConfig: it fills defaults and checks what
// tags cannot.
func (c *Config) Validate() error {
	c.SpaceID = strings.TrimSpace(c.SpaceID)
	if !idPattern.MatchString(c.SpaceID) {
		return fmt.Errorf("space_id %q is not a Contentful space id (letters, digits, '.', '_' and '-'; see Settings → General settings)", c.SpaceID)
	}
	if c.Environment = strings.TrimSpace(c.Environment); c.Environment == "" {
		c.Environment = DefaultEnvironment
	}
	if !idPattern.MatchString(c.Environment) {
		return fmt.Errorf("environment %q is not a Contentful environment id", c.Environment)
	}
	if strings.TrimSpace(c.AccessToken) == "" {
		return fmt.Errorf("access_token must not be empty: use the Content Delivery API token of an API key")
	}
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return fmt.Errorf("base_url %q must be an absolute http or https URL without a query", c.BaseURL)
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	c.Locale = strings.TrimSpace(c.Locale)
	return nil
}

// envURL is the URL of an endpoint of the environment:
// <base_url>/spaces/<space>/environments/<env>/<endpoint>.
func (c *Config) envURL(endpoint string, query url.Values) string {
	u := c.BaseURL + "/spaces/" + url.PathEscape(c.SpaceID) + "/environments/" + url.PathEscape(c.Environment) + "/" + endpoint
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return u
}

// spaceURL is the URL of the space itself.
func (c *Config) spaceURL() string {
	return c.BaseURL + "/spaces/" + url.PathEscape(c.SpaceID)
}
