package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
)

// Static is the part of GET /api/metrics/{id}/static agentctl shows.
type Static struct {
	Time Time `json:"time"`
	Host struct {
		Name   string `json:"name"`
		Uptime int64  `json:"uptime"`
	} `json:"host"`
	OS struct {
		Name            string `json:"name"`
		PlatformName    string `json:"platform_name"`
		PlatformVersion string `json:"platform_version"`
		Startup         Time   `json:"startup"`
	} `json:"os"`
	Kernel struct {
		Version string `json:"version"`
		Arch    string `json:"arch"`
	} `json:"kernel"`
	CPU struct {
		Physical int `json:"physical"`
		Logical  int `json:"logical"`
	} `json:"cpu"`
	Memory struct {
		Physical uint64 `json:"physical"`
		Swap     uint64 `json:"swap"`
	} `json:"memory"`
}

// Usage is the usage part of a dynamic report.
type Usage struct {
	CPU struct {
		Usage  float64 `json:"usage"`
		Load1  float64 `json:"load1"`
		Load5  float64 `json:"load5"`
		Load15 float64 `json:"load15"`
	} `json:"cpu"`
	Memory struct {
		Used      uint64  `json:"used"`
		Free      uint64  `json:"free"`
		Available uint64  `json:"available"`
		Usage     float64 `json:"usage"`
		SwapUsed  uint64  `json:"swap_used"`
		SwapFree  uint64  `json:"swap_free"`
	} `json:"memory"`
	Partitions []struct {
		Name           string  `json:"name"`
		Used           uint64  `json:"used"`
		Free           uint64  `json:"free"`
		Usage          float64 `json:"usage"`
		ReadPerSecond  float64 `json:"read_per_second"`
		WritePerSecond float64 `json:"write_per_second"`
	} `json:"partitions"`
	Interface []struct {
		Name      string `json:"name"`
		BytesSent uint64 `json:"bytes_sent"`
		BytesRecv uint64 `json:"bytes_recv"`
	} `json:"interface"`
}

// Process is one process of a dynamic report.
type Process struct {
	ID          int32    `json:"id"`
	ParentID    int32    `json:"pid"`
	User        string   `json:"user"`
	CPUUsage    float64  `json:"cpu_usage"`
	RSS         uint64   `json:"rss"`
	MemoryUsage float64  `json:"memory_usage"`
	Cmd         []string `json:"cmd"`
	Conns       int      `json:"conns"`
}

// Dynamic is GET /api/metrics/{id}/dynamic.
type Dynamic struct {
	Usage        *Usage    `json:"usage"`
	Process      []Process `json:"process"`
	Temperatures []struct {
		Name string  `json:"name"`
		Temp float64 `json:"temp"`
	} `json:"temperatures"`
}

// Static asks a metrics-agent for its host facts; raw is the payload as
// the server sent it.
func (c *Client) Static(ctx context.Context, id string) (Static, json.RawMessage, error) {
	var raw json.RawMessage
	var v Static
	if _, err := c.Call(ctx, http.MethodGet, "/api/metrics/"+url.PathEscape(id)+"/static", nil, nil, &raw); err != nil {
		return v, nil, err
	}
	err := json.Unmarshal(raw, &v)
	return v, raw, err
}

// Dynamic asks a metrics-agent for usage and its top processes.
func (c *Client) Dynamic(ctx context.Context, id string, top int) (Dynamic, json.RawMessage, error) {
	var raw json.RawMessage
	var v Dynamic
	q := url.Values{"top": {strconv.Itoa(top)}, "kinds": {"tcp"}}
	if _, err := c.Call(ctx, http.MethodGet, "/api/metrics/"+url.PathEscape(id)+"/dynamic", q, nil, &raw); err != nil {
		return v, nil, err
	}
	err := json.Unmarshal(raw, &v)
	return v, raw, err
}
