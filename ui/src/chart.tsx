import { BarController, BarElement, CategoryScale, Chart, Legend, LinearScale, Tooltip } from 'chart.js';
import { useEffect, useRef } from 'preact/hooks';
import { MEANING } from './meaning.ts';

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip);

/** Series without a meaning (attempts, currencies): neither green nor red. */
const OTHERS = ['#3b5b92', '#c48a1c', '#7a4f9a', '#4f7f8f', '#8a8f8c'];

/** A series' colour: its meaning's, else the next colour that means nothing. */
export function colourOf(series: Series[], i: number): string {
  const own = MEANING[series[i]!.label];
  if (own) return own;
  const plain = series.slice(0, i).filter((s) => !MEANING[s.label]).length;
  return OTHERS[plain % OTHERS.length]!;
}

export interface Series {
  label: string;
  values: number[];
}

/**
 * A bar chart (Chart.js, drawn on a canvas, no animation) with the same figures as a table for
 * screen readers and for anyone who wants the numbers: the canvas's label names the chart,
 * the table under it holds its data.
 */
export function BarChart(props: {
  id: string;
  title: string;
  labels: string[];
  series: Series[];
  stacked?: boolean;
  empty?: string;
}) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const key = JSON.stringify([props.labels, props.series, props.stacked]);
  useEffect(() => {
    if (!canvas.current || props.labels.length === 0) return;
    const chart = new Chart(canvas.current, {
      type: 'bar',
      data: {
        labels: props.labels,
        datasets: props.series.map((s, i) => ({
          label: s.label,
          data: s.values,
          backgroundColor: colourOf(props.series, i),
        })),
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        scales: {
          x: { stacked: props.stacked ?? false },
          y: { stacked: props.stacked ?? false, beginAtZero: true, ticks: { precision: 0 } },
        },
        plugins: { legend: { position: 'bottom' } },
      },
    });
    return () => chart.destroy();
  }, [key]);
  return (
    <figure class="chart" id={props.id}>
      <figcaption>{props.title}</figcaption>
      {props.labels.length === 0 ? (
        <p class="muted">{props.empty ?? 'No data in this window.'}</p>
      ) : (
        <>
          <div class="chart-box">
            <canvas ref={canvas} role="img" aria-label={`${props.title}: ${props.labels.join(', ')}`} />
          </div>
          <details>
            <summary>Figures</summary>
            <div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">{props.title}</th>
                    {props.series.map((s) => (
                      <th scope="col" key={s.label}>
                        {s.label}
                      </th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {props.labels.map((l, i) => (
                    <tr key={l} data-label={l}>
                      <th scope="row">{l}</th>
                      {props.series.map((s) => (
                        <td key={s.label}>{s.values[i]}</td>
                      ))}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </details>
        </>
      )}
    </figure>
  );
}
