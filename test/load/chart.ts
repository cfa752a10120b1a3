// The lab's picture: completed transfers per second and p99 latency, per strategy and scenario,
// drawn with Vega-Lite and rendered to SVG without a browser.
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { LabRecord } from './load';

export async function chartSvg(records: readonly LabRecord[], title: string): Promise<string> {
  const values = records.map((r) => ({
    scenario: r.scenario,
    strategy: r.strategy,
    completed: r.completed_per_second,
    p99: r.p99_final_ms,
    exact: r.correct ? 'money exact' : 'money WRONG',
  }));
  // Throughput as bars from zero; latency as dots on a log scale, since a bar needs a zero
  // baseline that a log scale does not have (Vega-Lite then draws every bar 0 px high).
  const panel = (field: string, axisTitle: string, scale: 'linear' | 'log') => ({
    width: 110,
    height: 220,
    mark:
      scale === 'log'
        ? { type: 'point' as const, filled: true, size: 90, tooltip: true }
        : { type: 'bar' as const, tooltip: true },
    encoding: {
      column: { field: 'scenario', type: 'nominal' as const, title: null },
      x: { field: 'strategy', type: 'nominal' as const, title: null, axis: { labelAngle: -45 } },
      y: { field, type: 'quantitative' as const, title: axisTitle, scale: { type: scale } },
      color: { field: 'strategy', type: 'nominal' as const, legend: null },
      opacity: {
        field: 'exact',
        type: 'ordinal' as const,
        sort: ['money exact', 'money WRONG'],
        scale: { domain: ['money exact', 'money WRONG'], range: [1, 0.35] },
        legend: { title: null, orient: 'top' as const },
      },
    },
  });
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    data: { values },
    vconcat: [
      panel('completed', 'completed transfers / s (higher is better)', 'linear'),
      panel('p99', 'p99 submit → final, ms (log; lower is better)', 'log'),
    ],
    config: { font: 'sans-serif' },
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}
