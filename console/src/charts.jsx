// Usage charts of a host (uPlot), from GET /api/metrics/{id}/history.
// Loaded only by the host page.
import uPlot from 'uplot';
import { useEffect, useRef } from 'preact/hooks';
import { fmtBytes } from './util.jsx';

// clock is a time tick: 24-hour HH:MM, with seconds when the ticks are
// less than a minute apart (a host with only a few samples yet).
const clock = (t, incr) => new Date(t * 1000).toLocaleTimeString([], {
  hour: '2-digit', minute: '2-digit', second: incr < 60 ? '2-digit' : undefined, hourCycle: 'h23',
});

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];

// yAxisSize is the width of the y axis: the widest tick label as drawn,
// plus the ticks and the gap, so that labels like "1000 KiB/s" are never
// cut off at the chart's left edge (a fixed size clipped the long ones).
// uPlot calls it again when the ticks change; from the third call of a
// layout pass on it keeps the size, so that the layout settles.
function yAxisSize(u, values, axisIdx, cycleNum) {
  const axis = u.axes[axisIdx];
  if (cycleNum > 1) return axis._size;
  let size = axis.ticks.size + axis.gap;
  const longest = (values || []).reduce((acc, v) => (v.length > acc.length ? v : acc), '');
  if (longest !== '') {
    u.ctx.font = axis.font[0];
    size += u.ctx.measureText(longest).width / devicePixelRatio;
  }
  return Math.ceil(size) + 4;
}

// BINARY_INCRS are the y tick steps of byte rates: powers of two of B,
// KiB, MiB and GiB, so that ticks read 512 KiB/s, 1 MiB/s rather than
// 977 KiB/s (uPlot's decimal steps shown in binary units).
const BINARY_INCRS = [];
for (let k = 0; k < 4; k++) for (let m = 1; m < 1024; m *= 2) BINARY_INCRS.push(m * 1024 ** k);

function Chart({ title, time, series, fmt, max, binary }) {
  const el = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    const width = Math.max(240, el.current.clientWidth || 400);
    const opts = {
      width,
      height: 160,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: max ? { range: [0, max] } : { range: (u, lo, hi) => [0, Math.max(hi * 1.1, 1)] } },
      axes: [
        // Clock times only: the hour is the last hour, and uPlot's second
        // line with the date stuck out left of the first tick, cut off.
        { stroke: '#555', grid: { stroke: '#eee' }, values: (u, ticks, i, space, incr) => ticks.map((t) => clock(t, incr)) },
        { stroke: '#555', grid: { stroke: '#eee' }, size: yAxisSize, values: (u, ticks) => ticks.map(fmt), ...(binary ? { incrs: BINARY_INCRS } : {}) },
      ],
      series: [{}, ...series.map((s, i) => ({
        label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false,
        value: (u, v) => (v === null || v === undefined ? '—' : fmt(v)),
      }))],
    };
    const data = [time, ...series.map((s) => s.values)];
    plot.current = new uPlot(opts, data, el.current);
    const ro = new ResizeObserver(() => {
      const w = el.current && el.current.clientWidth;
      if (w && plot.current) plot.current.setSize({ width: w, height: 160 });
    });
    ro.observe(el.current);
    return () => { ro.disconnect(); plot.current.destroy(); plot.current = null; };
  }, [series.length]);
  useEffect(() => {
    if (plot.current) plot.current.setData([time, ...series.map((s) => s.values)]);
  }, [time, series]);
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={el} role="img" aria-label={`${title}, ${time.length} samples`} data-samples={time.length} />
    </figure>
  );
}

const pct = (v) => `${Math.round(v)} %`;
const rate = (v) => `${fmtBytes(v)}/s`;
const num = (v) => (Math.abs(v) < 10 ? v.toFixed(1) : v.toFixed(0));

export default function UsageCharts({ h }) {
  if (!h || !h.time || h.time.length === 0) {
    return <p class="muted" data-testid="no-history">No usage samples in the last hour yet (the metrics-agent pushes them every few seconds).</p>;
  }
  return (
    <div class="charts" data-testid="charts" data-source={h.source}>
      <Chart title="CPU, memory and fullest disk (%)" time={h.time} max={100} fmt={pct}
        series={[{ label: 'CPU', values: h.cpu }, { label: 'memory', values: h.mem }, { label: 'disk', values: h.disk }]} />
      <Chart title="Load (1 min)" time={h.time} fmt={num} series={[{ label: 'load1', values: h.load1 }]} />
      <Chart title="Disk throughput" time={h.time} fmt={rate} binary
        series={[{ label: 'read', values: h.disk_read }, { label: 'write', values: h.disk_write }]} />
      <Chart title="Network throughput" time={h.time} fmt={rate} binary
        series={[{ label: 'received', values: h.net_recv }, { label: 'sent', values: h.net_sent }]} />
    </div>
  );
}
