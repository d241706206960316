/**
 * `GET /v1/usage`: the caller's spend and outcomes as JSON, or as CSV with `format=csv`.
 */
import { Router, type Request } from 'express';
import { stringify } from 'csv-stringify/sync';
import { problems } from '../core/model/problems.js';
import { USAGE_METRIC_COLUMNS, type UsageReport, type UsageResult } from '../core/tasks/usage-report.js';
import { rememberMountPath } from './middleware.js';

function tenantOf(req: Request): string {
  if (!req.tenant) throw problems.unauthorized('not authenticated');
  return req.tenant;
}

/** What a spreadsheet takes for the start of a formula when a cell begins with it. */
const FORMULA_START = /^[=+\-@\t\r]/;

/**
 * A text cell as a spreadsheet should read it: one that would start a formula (a tenant named
 * `@ops` or `=HYPERLINK(…)`) gets a leading `'`, which spreadsheets read as "text follows".
 * Numbers are written as they are.
 */
function csvCell(value: unknown): unknown {
  if (value === null || value === undefined) return '';
  return typeof value === 'string' && FORMULA_START.test(value) ? `'${value}` : value;
}

/** The rows as RFC 4180 CSV: a header, the group keys in `group_by` order, then the metrics. */
export function usageCsv(result: UsageResult): string {
  const columns = [...result.group_by, ...USAGE_METRIC_COLUMNS];
  return stringify(
    result.data.map((row) => columns.map((column) => csvCell((row as unknown as Record<string, unknown>)[column]))),
    { header: true, columns, record_delimiter: 'windows' },
  );
}

export function usageRoutes(usage: UsageReport): Router {
  const router = Router();
  router.use(rememberMountPath());
  router.get('/', async (req, res) => {
    const result = await usage.report(tenantOf(req), req.query);
    if (result.format === 'csv') {
      res
        .type('text/csv; charset=utf-8')
        .set('content-disposition', `attachment; filename="usage-${result.from.slice(0, 10)}-${result.to.slice(0, 10)}.csv"`)
        .send(usageCsv(result));
      return;
    }
    const { format: _format, ...body } = result;
    res.json(body);
  });
  return router;
}
