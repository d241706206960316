/**
 * The read baseline of `npm run bench`: the least a server can do for `GET /v1/videos/{id}` on
 * the same stack: express, its JSON body parser, a zod check of the id, a bearer-key check, one
 * prepared better-sqlite3 point read by primary key, and the row's JSON sent back. Plain
 * JavaScript run by node, in a process of its own, like the gateway's compiled build.
 *
 *   BARE_DATABASE=<file> BARE_TEMPLATE=<task.json> BARE_ROWS=<n> BARE_KEY=<key> node bench/bare-server.mjs
 *
 * Seeds `BARE_ROWS` rows copied from the template (a real Task the gateway answered, so the
 * answers are the same size), listens on a free loopback port and prints `{"url": …, "ids": […]}`.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import express from 'express';
import { z } from 'zod';

const rows = Number(process.env.BARE_ROWS ?? 100);
const key = process.env.BARE_KEY ?? 'bench-secret-key';
const template = JSON.parse(readFileSync(process.env.BARE_TEMPLATE ?? '', 'utf8'));

const db = new Database(process.env.BARE_DATABASE ?? ':memory:');
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.exec('CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, status TEXT NOT NULL, body TEXT NOT NULL)');
const insert = db.prepare('INSERT INTO tasks (id, tenant, status, body) VALUES (?, ?, ?, ?)');
const ids = [];
db.transaction(() => {
  for (let index = 0; index < rows; index++) {
    const id = `vid_bare${String(index).padStart(12, '0')}`;
    ids.push(id);
    insert.run(id, 'bench', template.status, JSON.stringify({ ...template, id }));
  }
})();
const select = db.prepare('SELECT tenant, body FROM tasks WHERE id = ?');

const digest = (text) => createHash('sha256').update(text).digest('hex');
const tenants = new Map([[digest(key), 'bench']]);
const TaskId = z.string().regex(/^vid_[A-Za-z0-9_-]{1,64}$/);

const app = express();
app.disable('x-powered-by');
app.use(express.json());
app.get('/v1/videos/:id', (req, res) => {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.header('authorization') ?? '');
  const tenant = match?.[1] ? tenants.get(digest(match[1])) : undefined;
  if (!tenant) {
    res.status(401).json({ title: 'Unauthorized' });
    return;
  }
  const id = TaskId.safeParse(req.params.id);
  if (!id.success) {
    res.status(400).json({ title: 'Bad id' });
    return;
  }
  const row = select.get(id.data);
  if (!row || row.tenant !== tenant) {
    res.status(404).json({ title: 'Not found' });
    return;
  }
  res.json(JSON.parse(row.body));
});

const server = app.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${address.port}`, ids: ids.slice(0, 1000) })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
