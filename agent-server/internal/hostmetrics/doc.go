// Package hostmetrics is the server side of the metrics-agents: it ingests
// their pushed reports (hm_static_rep 31 and hm_dynamic_rep 33 without tid,
// one or several categories per message; hm_agent_status 37), keeps the
// latest report of each category per agent and a bounded usage history in
// the store, serves the in-memory host table as node_exporter-style series
// for /metrics/hosts, and sends the metrics requests (30, 32, 34, 36) to
// agents for the /api/metrics routes.
//
// # Writes
//
// Pushes only update maps. Every FlushInterval, the latest report of every
// (agent, category) received since the previous flush is written with one
// PutMetrics call (one transaction, multi-row inserts) and the usage history
// samples with one AddUsage call, so the store sees two transactions per
// interval whatever the number of agents. At most one history sample per
// agent and HistoryInterval is kept; samples older than Retention are pruned
// every PruneInterval. Reports are stored in their HTTP API shape (see
// [Static], [Usage], …), with the server's receive time.
//
// # /metrics/hosts
//
// One immutable snapshot per host, replaced by each push; a scrape copies
// the pointers and builds the series: node_uname_info, node_boot_time_seconds,
// node_cpus, node_cpu_usage_percent, node_load1/5/15, node_memory_*_bytes,
// node_filesystem_{size,free,avail}_bytes and _files{,_free} per mount,
// node_disk_{read,written}_bytes_per_second per mount,
// node_network_{receive,transmit}_{bytes,packets}_total per interface,
// node_processes, node_hwmon_temp_celsius per sensor, each with an id label;
// never per process or per connection. Mounts, interfaces and sensors are
// capped per host (agentserver_host_capped_items counts what was left out).
// A host leaves the table when its agent disconnects ([Service.Forget]) or
// has not pushed usage for StaleIntervals usage intervals (the interval the
// agent reports in type 37, else the gap between its last two pushes, else
// DefaultInterval), and for at least MinStale.
package hostmetrics
