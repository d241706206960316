/** The routes fuzzed (`test/support/routes-fuzz.ts`) on SQLite. */
import { describeRoutesFuzz } from '../support/routes-fuzz.js';

describeRoutesFuzz({ runShare: 1 });
