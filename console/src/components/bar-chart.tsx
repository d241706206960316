/**
 * A horizontal bar chart in SVG with the same numbers as a table beside it: the chart is for the
 * eye (hidden from screen readers), the table is what assistive technology reads.
 *
 * The SVG has no viewBox, so it is never scaled: its text stays at the stylesheet's size at any
 * screen width (a 560-unit drawing squeezed into a phone shrank it to 6 px). Each label sits on
 * its own line above its bar, and bars are drawn in percent of the chart's width, so the chart
 * fits the width it is given without measuring it.
 *
 * Every length but the bars' widths is in em of the chart's text, whose size follows the page's
 * (`.bars`: 0.75rem, 12 px at the browser's default), so a reader who set a larger font size gets
 * larger words and rows to match, never words over the bars.
 */
export interface BarDatum {
  label: string;
  value: number;
  /** How the value reads (e.g. "$1.20"). */
  text: string;
}

/** The longest bar, in percent of the width: the rest is room for its value beside it. */
const LONGEST_BAR_PERCENT = 70;
/** The text size the lengths below were drawn at, in px; `em` makes them lengths of the text. */
const DRAWN_AT_PX = 12;
const ROW_HEIGHT = 44;
const LABEL_BASELINE = 15;
const BAR_TOP = 21;
const BAR_HEIGHT = 16;
const VALUE_GAP = 8;
const LONGEST_LABEL = 40;

/** A length drawn at `DRAWN_AT_PX`, in em of the chart's text. */
function em(px: number): string {
  return `${px / DRAWN_AT_PX}em`;
}

export function BarChart({ title, data, id }: { title: string; data: BarDatum[]; id: string }) {
  const max = Math.max(0, ...data.map((datum) => datum.value));
  const height = Math.max(ROW_HEIGHT, data.length * ROW_HEIGHT);
  return (
    <figure class="chart" aria-labelledby={`${id}-title`}>
      <figcaption id={`${id}-title`}>{title}</figcaption>
      {data.length === 0 ? (
        <p class="muted">Nothing in this period.</p>
      ) : (
        <svg width="100%" height={em(height)} aria-hidden="true" focusable="false" class="bars" data-chart={id}>
          {data.map((datum, index) => {
            const percent = max > 0 ? (datum.value / max) * LONGEST_BAR_PERCENT : 0;
            // A transform takes no units: each row's lengths are added up in px, then made em.
            const y = index * ROW_HEIGHT;
            return (
              <g key={datum.label}>
                <text x={0} y={em(y + LABEL_BASELINE)} class="bar-label">
                  {datum.label.length > LONGEST_LABEL ? `${datum.label.slice(0, LONGEST_LABEL - 1)}…` : datum.label}
                </text>
                {/* A zero still shows, 2 px wide, where its bar would be. */}
                <rect x={0} y={em(y + BAR_TOP)} width={percent > 0 ? `${percent}%` : 2} height={em(BAR_HEIGHT)} rx={3} class="bar" />
                <text x={`${percent}%`} dx={em(VALUE_GAP)} y={em(y + BAR_TOP + BAR_HEIGHT - 4)} class="bar-value">
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
