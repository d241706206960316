/**
 * A horizontal bar chart in SVG with the same numbers as a table beside it: the chart is for the
 * eye (hidden from screen readers), the table is what assistive technology reads.
 */
export interface BarDatum {
  label: string;
  value: number;
  /** How the value reads (e.g. "$1.20"). */
  text: string;
}

export function BarChart({ title, data, id }: { title: string; data: BarDatum[]; id: string }) {
  const max = Math.max(0, ...data.map((datum) => datum.value));
  const rowHeight = 28;
  const labelWidth = 132;
  const width = 560;
  const barSpace = width - labelWidth - 90;
  const height = Math.max(rowHeight, data.length * rowHeight);
  return (
    <figure class="chart" aria-labelledby={`${id}-title`}>
      <figcaption id={`${id}-title`}>{title}</figcaption>
      {data.length === 0 ? (
        <p class="muted">Nothing in this period.</p>
      ) : (
        <svg viewBox={`0 0 ${width} ${height}`} width="100%" aria-hidden="true" focusable="false" class="bars" data-chart={id}>
          {data.map((datum, index) => {
            const barWidth = max > 0 ? Math.max(2, (datum.value / max) * barSpace) : 2;
            const y = index * rowHeight;
            return (
              <g key={datum.label} transform={`translate(0 ${y})`}>
                <text x={labelWidth - 8} y={rowHeight / 2 + 4} text-anchor="end" class="bar-label">
                  {datum.label.length > 18 ? `${datum.label.slice(0, 17)}…` : datum.label}
                </text>
                <rect x={labelWidth} y={5} width={barWidth} height={rowHeight - 10} rx={3} class="bar" />
                <text x={labelWidth + barWidth + 6} y={rowHeight / 2 + 4} class="bar-value">
                  {datum.text}
                </text>
              </g>
            );
          })}
        </svg>
      )}
    </figure>
  );
}
