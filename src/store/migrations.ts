/**
 * Schema migrations, in code so the same list runs on SQLite and PostgreSQL through Kysely's
 * migrator (which records what ran and takes a lock, so replicas starting together are safe).
 */
import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import { isNotableOutputId, type Dialect } from './schema.js';

function migrations(dialect: Dialect): Record<string, Migration> {
  const time = 'bigint' as const;
  return {
    '0001_initial': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('tasks')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('tenant', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('phase', 'text', (c) => c.notNull())
          .addColumn('model', 'text', (c) => c.notNull())
          .addColumn('quality', 'text', (c) => c.notNull())
          .addColumn('operation', 'text', (c) => c.notNull())
          .addColumn('request_json', 'text', (c) => c.notNull())
          .addColumn('plan_json', 'text', (c) => c.notNull())
          .addColumn('warnings_json', 'text', (c) => c.notNull())
          .addColumn('metadata_json', 'text', (c) => c.notNull())
          .addColumn('provider', 'text')
          .addColumn('provider_task_id', 'text')
          .addColumn('provider_status', 'text')
          .addColumn('tracking_json', 'text')
          .addColumn('outputs_json', 'text', (c) => c.notNull())
          .addColumn('error_json', 'text')
          .addColumn('cost_json', 'text', (c) => c.notNull())
          .addColumn('webhook_url', 'text')
          .addColumn('callback_token', 'text')
          .addColumn('created_at', time, (c) => c.notNull())
          .addColumn('updated_at', time, (c) => c.notNull())
          .addColumn('completed_at', time)
          .addColumn('deadline_at', time, (c) => c.notNull())
          .addColumn('dispatch_after', time, (c) => c.notNull())
          .addColumn('next_poll_at', time)
          .addColumn('poll_count', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('lease_owner', 'text')
          .addColumn('lease_until', time)
          .addColumn('expects_webhook', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('version', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema.createIndex('tasks_tenant_created').on('tasks').columns(['tenant', 'created_at', 'id']).execute();
        await db.schema.createIndex('tasks_phase_poll').on('tasks').columns(['phase', 'next_poll_at']).execute();
        await db.schema.createIndex('tasks_phase_created').on('tasks').columns(['phase', 'created_at']).execute();
        await db.schema.createIndex('tasks_provider_phase').on('tasks').columns(['provider', 'phase']).execute();
        await db.schema
          .createIndex('tasks_provider_task')
          .on('tasks')
          .columns(['provider', 'provider_task_id'])
          .execute();
        await db.schema.createIndex('tasks_callback_token').on('tasks').column('callback_token').unique().execute();

        let attempts = db.schema.createTable('attempts');
        attempts =
          dialect === 'postgres'
            ? attempts.addColumn('id', 'serial', (c) => c.primaryKey())
            : attempts.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement());
        await attempts
          .addColumn('task_id', 'text', (c) => c.notNull().references('tasks.id').onDelete('cascade'))
          .addColumn('seq', 'integer', (c) => c.notNull())
          .addColumn('provider', 'text', (c) => c.notNull())
          .addColumn('outcome', 'text', (c) => c.notNull())
          .addColumn('error_code', 'text')
          .addColumn('provider_code', 'text')
          .addColumn('http_status', 'integer')
          .addColumn('latency_ms', 'integer')
          .addColumn('message', 'text')
          .addColumn('at', time, (c) => c.notNull())
          .addUniqueConstraint('attempts_task_seq', ['task_id', 'seq'])
          .execute();

        await db.schema
          .createTable('idempotency_keys')
          .addColumn('tenant', 'text', (c) => c.notNull())
          .addColumn('key', 'text', (c) => c.notNull())
          .addColumn('request_hash', 'text', (c) => c.notNull())
          .addColumn('task_id', 'text', (c) => c.notNull())
          .addColumn('created_at', time, (c) => c.notNull())
          .addColumn('expires_at', time, (c) => c.notNull())
          .addPrimaryKeyConstraint('idempotency_keys_pk', ['tenant', 'key'])
          .execute();

        await db.schema
          .createTable('inbound_webhooks')
          .addColumn('provider', 'text', (c) => c.notNull())
          .addColumn('webhook_id', 'text', (c) => c.notNull())
          .addColumn('received_at', time, (c) => c.notNull())
          .addPrimaryKeyConstraint('inbound_webhooks_pk', ['provider', 'webhook_id'])
          .execute();

        await db.schema.createTable('providers').addColumn('id', 'text', (c) => c.primaryKey()).execute();

        await db.schema
          .createTable('deliveries')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('task_id', 'text', (c) => c.notNull().references('tasks.id').onDelete('cascade'))
          .addColumn('tenant', 'text', (c) => c.notNull())
          .addColumn('url', 'text', (c) => c.notNull())
          .addColumn('event_type', 'text', (c) => c.notNull())
          .addColumn('payload_json', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('next_attempt_at', time, (c) => c.notNull())
          .addColumn('last_status', 'integer')
          .addColumn('last_error', 'text')
          .addColumn('created_at', time, (c) => c.notNull())
          .addColumn('delivered_at', time)
          .addColumn('lease_owner', 'text')
          .addColumn('lease_until', time)
          .execute();
        await db.schema
          .createIndex('deliveries_due')
          .on('deliveries')
          .columns(['status', 'next_attempt_at'])
          .execute();
        await db.schema.createIndex('deliveries_task').on('deliveries').column('task_id').execute();
      },
      async down(db: Kysely<unknown>) {
        for (const table of ['deliveries', 'providers', 'inbound_webhooks', 'idempotency_keys', 'attempts', 'tasks']) {
          await db.schema.dropTable(table).ifExists().execute();
        }
      },
    },
    '0002_recovery_and_fair_queue': {
      async up(db: Kysely<unknown>) {
        // The upstream's id is written on the attempt the moment a create is accepted, so a crash
        // before the task itself is updated can resume tracking instead of sending it again.
        await db.schema.alterTable('attempts').addColumn('provider_task_id', 'text').execute();
        await db.schema.alterTable('attempts').addColumn('tracking_json', 'text').execute();
        // Providers a waiting task may go to (`,a,b,`), so a new task queues only behind older
        // tasks that compete for the same providers.
        await db.schema
          .alterTable('tasks')
          .addColumn('candidates', 'text', (c) => c.notNull().defaultTo(''))
          .execute();
        await db.schema.createIndex('tasks_phase_deadline').on('tasks').columns(['phase', 'deadline_at']).execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropIndex('tasks_phase_deadline').ifExists().execute();
        await db.schema.alterTable('tasks').dropColumn('candidates').execute();
        await db.schema.alterTable('attempts').dropColumn('tracking_json').execute();
        await db.schema.alterTable('attempts').dropColumn('provider_task_id').execute();
      },
    },
    '0003_shared_provider_state': {
      async up(db: Kysely<unknown>) {
        // Circuit and cool-down per upstream account, shared by every replica.
        await db.schema
          .createTable('provider_state')
          .addColumn('key', 'text', (c) => c.primaryKey())
          .addColumn('failures', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('opened_at', time)
          .addColumn('trial_owner', 'text')
          .addColumn('trial_until', time)
          .addColumn('cooldown_until', time, (c) => c.notNull().defaultTo(0))
          .addColumn('updated_at', time, (c) => c.notNull().defaultTo(0))
          .execute();
        // Calls allowed by the rate windows: a sliding log per account.
        let grants = db.schema.createTable('rate_grants');
        grants =
          dialect === 'postgres'
            ? grants.addColumn('id', 'bigserial', (c) => c.primaryKey())
            : grants.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement());
        await grants
          .addColumn('key', 'text', (c) => c.notNull())
          .addColumn('at', time, (c) => c.notNull())
          .execute();
        await db.schema.createIndex('rate_grants_key_at').on('rate_grants').columns(['key', 'at']).execute();
        // Samples of recent upstream calls, for the figures every replica routes by.
        let calls = db.schema.createTable('upstream_calls');
        calls =
          dialect === 'postgres'
            ? calls.addColumn('id', 'bigserial', (c) => c.primaryKey())
            : calls.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement());
        await calls
          .addColumn('key', 'text', (c) => c.notNull())
          .addColumn('at', time, (c) => c.notNull())
          .addColumn('ok', 'integer', (c) => c.notNull())
          .addColumn('latency_ms', 'integer', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('upstream_calls_key_at').on('upstream_calls').columns(['key', 'at']).execute();
        // Recent completions per provider (the median time to complete that `fastest` routes by).
        await db.schema
          .createIndex('tasks_provider_status_completed')
          .on('tasks')
          .columns(['provider', 'status', 'completed_at'])
          .execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropIndex('tasks_provider_status_completed').ifExists().execute();
        for (const table of ['upstream_calls', 'rate_grants', 'provider_state']) {
          await db.schema.dropTable(table).ifExists().execute();
        }
      },
    },
    '0004_cancel_and_custody': {
      async up(db: Kysely<unknown>) {
        // `cancel_after`: when a task still queued is canceled.
        await db.schema.alterTable('tasks').addColumn('cancel_at', time).execute();
        // Retention of stored outputs: the earliest deadline among a task's stored files.
        await db.schema.alterTable('tasks').addColumn('storage_expires_at', time).execute();
        await db.schema.createIndex('tasks_phase_cancel').on('tasks').columns(['phase', 'cancel_at']).execute();
        await db.schema.createIndex('tasks_storage_expires').on('tasks').column('storage_expires_at').execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropIndex('tasks_storage_expires').ifExists().execute();
        await db.schema.dropIndex('tasks_phase_cancel').ifExists().execute();
        await db.schema.alterTable('tasks').dropColumn('storage_expires_at').execute();
        await db.schema.alterTable('tasks').dropColumn('cancel_at').execute();
      },
    },
    '0005_usage_and_budgets': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('task_usage')
          .addColumn('task_id', 'text', (c) => c.primaryKey().references('tasks.id').onDelete('cascade'))
          .addColumn('tenant', 'text', (c) => c.notNull())
          .addColumn('created_at', time, (c) => c.notNull())
          .addColumn('day', 'text', (c) => c.notNull())
          .addColumn('model', 'text', (c) => c.notNull())
          .addColumn('quality', 'text', (c) => c.notNull())
          .addColumn('operation', 'text', (c) => c.notNull())
          .addColumn('provider', 'text')
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('completed_at', time)
          .addColumn('duration_ms', time)
          .addColumn('video_seconds', 'double precision', (c) => c.notNull().defaultTo(0))
          .addColumn('credits', 'double precision')
          .addColumn('amount_micros', time)
          .addColumn('currency', 'text')
          .addColumn('reported', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('estimated_credits', 'double precision')
          .addColumn('reported_credits', 'double precision')
          .addColumn('budget_period', 'text')
          .addColumn('reserved_micros', time, (c) => c.notNull().defaultTo(0))
          .addColumn('settled', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();
        await db.schema.createIndex('task_usage_tenant_created').on('task_usage').columns(['tenant', 'created_at']).execute();
        await db.schema.createIndex('task_usage_created').on('task_usage').column('created_at').execute();

        await db.schema
          .createTable('budgets')
          .addColumn('tenant', 'text', (c) => c.notNull())
          .addColumn('period', 'text', (c) => c.notNull())
          .addColumn('spent_micros', time, (c) => c.notNull().defaultTo(0))
          .addColumn('reserved_micros', time, (c) => c.notNull().defaultTo(0))
          .addColumn('warned_at', time)
          .addColumn('exhausted_at', time)
          .addColumn('updated_at', time, (c) => c.notNull())
          .addPrimaryKeyConstraint('budgets_pk', ['tenant', 'period'])
          .execute();

        // Usage rows for the tasks that existed before this migration, from their columns and
        // cost JSON (read once, here).
        const dayOf =
          dialect === 'postgres'
            ? sql`to_char(to_timestamp(created_at / 1000.0) at time zone 'UTC', 'YYYY-MM-DD')`
            : sql`strftime('%Y-%m-%d', created_at / 1000, 'unixepoch')`;
        const costField = (field: string, type: 'number' | 'text' | 'bool') => {
          if (dialect === 'postgres') {
            const cast = type === 'number' ? 'double precision' : type === 'bool' ? 'boolean' : 'text';
            return sql.raw(`(cost_json::json->>'${field}')::${cast}`);
          }
          return sql.raw(`json_extract(cost_json, '$.${field}')`);
        };
        // As a task's end writes them (`chargeOf` in the spend ledger): a cost counts as the
        // provider's report only on a task a provider accepted (an upstream id) whose cost is not
        // an estimate and says its credits; the estimate beside it is the plan's for the task's
        // provider. Before, every cost not marked estimated counted as reported (a task failed
        // before any provider took it, one canceled while queued) and no line had an estimate,
        // so the usage report's `tasks_reported` and drift differed from the release that ran them.
        const isReported = sql`(coalesce(${costField('estimated', 'bool')}, false) = false and provider_task_id is not null and ${costField('credits', 'number')} is not null)`;
        const plannedCredits =
          dialect === 'postgres'
            ? sql`(select (candidate->'estimate'->>'credits')::double precision from json_array_elements(case when json_typeof(plan_json::json->'candidates') = 'array' then plan_json::json->'candidates' else '[]'::json end) candidate where candidate->>'provider' = tasks.provider limit 1)`
            : sql`(select json_extract(candidate.value, '$.estimate.credits') from json_each(plan_json, '$.candidates') candidate where json_extract(candidate.value, '$.provider') = tasks.provider limit 1)`;
        await sql`
          insert into task_usage (task_id, tenant, created_at, day, model, quality, operation, provider, status,
            completed_at, duration_ms, video_seconds, credits, amount_micros, currency, reported, estimated_credits, reported_credits, settled)
          select id, tenant, created_at, ${dayOf}, model, quality, operation, provider, status,
            completed_at, completed_at - created_at, 0, ${costField('credits', 'number')},
            cast(round(${costField('currency_amount', 'number')} * 1000000) as bigint), ${costField('currency', 'text')},
            case when ${isReported} then 1 else 0 end, ${plannedCredits},
            case when ${isReported} then ${costField('credits', 'number')} end,
            case when phase = 'done' then 1 else 0 end
          from tasks`.execute(db);

        // Account events (budget alerts) are deliveries with no task.
        if (dialect === 'postgres') {
          await sql`alter table deliveries alter column task_id drop not null`.execute(db);
        } else {
          await rebuildSqliteDeliveriesWithNullableTask(db);
        }
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropTable('budgets').ifExists().execute();
        await db.schema.dropTable('task_usage').ifExists().execute();
      },
    },
    '0006_provider_accounts': {
      async up(db: Kysely<unknown>) {
        // Several accounts per provider: a task holds a slot of one account, and each attempt
        // names the account it went through. Rows from before used the one account, `default`.
        await db.schema.alterTable('tasks').addColumn('account', 'text').execute();
        await db.schema.alterTable('attempts').addColumn('account', 'text').execute();
        await sql`update tasks set account = 'default' where provider is not null`.execute(db);
        await sql`update attempts set account = 'default' where outcome <> 'skipped'`.execute(db);
        await db.schema.createIndex('tasks_provider_account_phase').on('tasks').columns(['provider', 'account', 'phase']).execute();
        // Circuit, cool-down and rate windows were keyed by provider; now by `provider:account`.
        for (const table of ['provider_state', 'rate_grants']) {
          await sql`update ${sql.table(table)} set key = key || ':default' where key not like '%:%'`.execute(db);
        }
      },
      async down(db: Kysely<unknown>) {
        for (const table of ['provider_state', 'rate_grants']) {
          await sql`delete from ${sql.table(table)} where key not like '%:default'`.execute(db);
          await sql`update ${sql.table(table)} set key = substr(key, 1, length(key) - 8)`.execute(db);
        }
        await db.schema.dropIndex('tasks_provider_account_phase').ifExists().execute();
        await db.schema.alterTable('attempts').dropColumn('account').execute();
        await db.schema.alterTable('tasks').dropColumn('account').execute();
      },
    },
    '0007_leaner_task_indexes': {
      async up(db: Kysely<unknown>) {
        // Every index on `tasks` is written by every create and most state changes. Queued tasks
        // are few, so cancel-due reads find them through (phase, created_at) like every other
        // queue read; and only tasks with stored outputs have a retention deadline, so that
        // index holds them alone (a query on `storage_expires_at <= ?` implies NOT NULL).
        await db.schema.dropIndex('tasks_phase_cancel').ifExists().execute();
        await db.schema.dropIndex('tasks_storage_expires').ifExists().execute();
        await db.schema
          .createIndex('tasks_storage_expires')
          .on('tasks')
          .column('storage_expires_at')
          .where(sql.ref('storage_expires_at'), 'is not', null)
          .execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropIndex('tasks_storage_expires').ifExists().execute();
        await db.schema.createIndex('tasks_storage_expires').on('tasks').column('storage_expires_at').execute();
        await db.schema.createIndex('tasks_phase_cancel').on('tasks').columns(['phase', 'cancel_at']).execute();
      },
    },
    '0008_recovered_attempts': {
      async up(db: Kysely<unknown>) {
        // How an accepted task whose create answer was lost was found again.
        await db.schema.alterTable('attempts').addColumn('recovered_by', 'text').execute();
        // "Is this upstream task one of ours?" (a provider's task list read after a lost answer).
        await db.schema.createIndex('attempts_provider_task').on('attempts').columns(['provider', 'provider_task_id']).execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropIndex('attempts_provider_task').ifExists().execute();
        await db.schema.alterTable('attempts').dropColumn('recovered_by').execute();
      },
    },
    '0009_rate_window_table': {
      async up(db: Kysely<unknown>) {
        // rate-limiter-flexible's table for windows shared by replicas (`window-limiter.ts`), made
        // here, once, under the migrator's lock: its own CREATE TABLE IF NOT EXISTS, raced by
        // replicas taking their first create at the same moment, fails one of them. SQLite
        // counts in memory and needs no table.
        if (dialect !== 'postgres') return;
        await db.schema
          .createTable('gateway_rate_windows')
          .ifNotExists()
          .addColumn('key', 'varchar(255)', (c) => c.primaryKey())
          .addColumn('points', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('expire', 'bigint')
          .execute();
      },
      async down(db: Kysely<unknown>) {
        if (dialect === 'postgres') await db.schema.dropTable('gateway_rate_windows').ifExists().execute();
      },
    },
    '0010_partial_task_indexes': {
      async up(db: Kysely<unknown>) {
        // An index is written whenever a column it holds (or its WHERE reads) changes. Indexes
        // led by `phase` were rewritten by every state change of every task, and held every task
        // ever made. Each query reads tasks of one or two phases, so each index now holds only
        // those: a task enters and leaves a few of them in its life, and the finished majority
        // sits in none. The queries name the phases as literals (`task-store.ts`), so that SQLite
        // and PostgreSQL can prove the index covers them.
        for (const name of [
          'tasks_phase_poll',
          'tasks_phase_created',
          'tasks_provider_phase',
          'tasks_phase_deadline',
          'tasks_provider_account_phase',
          'tasks_provider_status_completed',
          'tasks_provider_task',
        ]) {
          await db.schema.dropIndex(name).ifExists().execute();
        }
        // The queue, in fair order.
        await sql`create index tasks_queue on tasks (created_at, id) where phase = 'dispatch'`.execute(db);
        // Submissions under way (abandoned when their lease ran out).
        await sql`create index tasks_submitting on tasks (lease_until) where phase = 'submitting'`.execute(db);
        // Slots in use per account.
        await sql`create index tasks_in_flight on tasks (provider, account, phase) where phase in ('submitting', 'tracking')`.execute(db);
        // Polls and result copies due.
        await sql`create index tasks_due on tasks (phase, next_poll_at) where phase in ('tracking', 'storing')`.execute(db);
        // Deadlines of unfinished tasks.
        await sql`create index tasks_unfinished_deadline on tasks (deadline_at) where phase in ('dispatch', 'submitting', 'tracking')`.execute(db);
        // News from a provider names its task id.
        await sql`create index tasks_provider_task on tasks (provider, provider_task_id) where provider_task_id is not null`.execute(db);
        // Recent completion times per provider (figures shared by replicas).
        await sql`create index tasks_succeeded on tasks (provider, completed_at) where status = 'succeeded'`.execute(db);
      },
      async down(db: Kysely<unknown>) {
        for (const name of ['tasks_queue', 'tasks_submitting', 'tasks_in_flight', 'tasks_due', 'tasks_unfinished_deadline', 'tasks_provider_task', 'tasks_succeeded']) {
          await db.schema.dropIndex(name).ifExists().execute();
        }
        await db.schema.createIndex('tasks_phase_poll').on('tasks').columns(['phase', 'next_poll_at']).execute();
        await db.schema.createIndex('tasks_phase_created').on('tasks').columns(['phase', 'created_at']).execute();
        await db.schema.createIndex('tasks_provider_phase').on('tasks').columns(['provider', 'phase']).execute();
        await db.schema.createIndex('tasks_phase_deadline').on('tasks').columns(['phase', 'deadline_at']).execute();
        await db.schema.createIndex('tasks_provider_account_phase').on('tasks').columns(['provider', 'account', 'phase']).execute();
        await db.schema.createIndex('tasks_provider_status_completed').on('tasks').columns(['provider', 'status', 'completed_at']).execute();
        await db.schema.createIndex('tasks_provider_task').on('tasks').columns(['provider', 'provider_task_id']).execute();
      },
    },
    '0011_status_version': {
      async up(db: Kysely<unknown>) {
        // The version at which the task took its current status: an event stream's reconnect
        // (`Last-Event-ID`, a version) tells by it whether the client already has that status.
        // Null on rows written before: those streams compare with the version, as before.
        await db.schema.alterTable('tasks').addColumn('status_version', 'integer').execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.alterTable('tasks').dropColumn('status_version').execute();
      },
    },
    '0012_cancel_requests': {
      async up(db: Kysely<unknown>) {
        // A cancel that arrived while a create was on its way, kept where every replica's
        // dispatcher sees it: no further create of the task leaves once it is written.
        await db.schema.alterTable('tasks').addColumn('cancel_requested_at', time).execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.alterTable('tasks').dropColumn('cancel_requested_at').execute();
      },
    },
    '0013_usage_at_risk': {
      async up(db: Kysely<unknown>) {
        // Charges a provider may have made for a task another provider then took (a create left
        // unanswered and failed over): usage reports show them beside the spend, by the same keys.
        await db.schema
          .createTable('usage_at_risk')
          .addColumn('task_id', 'text', (c) => c.notNull().references('tasks.id').onDelete('cascade'))
          .addColumn('provider', 'text', (c) => c.notNull())
          .addColumn('account', 'text')
          .addColumn('tenant', 'text', (c) => c.notNull())
          .addColumn('created_at', time, (c) => c.notNull())
          .addColumn('day', 'text', (c) => c.notNull())
          .addColumn('model', 'text', (c) => c.notNull())
          .addColumn('quality', 'text', (c) => c.notNull())
          .addColumn('operation', 'text', (c) => c.notNull())
          .addColumn('credits', 'double precision')
          .addColumn('amount_micros', time)
          .addColumn('currency', 'text')
          .addPrimaryKeyConstraint('usage_at_risk_pk', ['task_id', 'provider'])
          .execute();
        await db.schema.createIndex('usage_at_risk_tenant_created').on('usage_at_risk').columns(['tenant', 'created_at']).execute();
        await db.schema.createIndex('usage_at_risk_created').on('usage_at_risk').column('created_at').execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropTable('usage_at_risk').ifExists().execute();
      },
    },
    '0014_account_in_flight_counts': {
      async up(db: Kysely<unknown>) {
        // SQLite: every slot claim counted the account's tasks in flight, a walk of the partial
        // index that grows with them (about 0.1 ms per 1,000). Triggers now keep the count per
        // account in the transaction of each change, whatever statement makes it, so a claim
        // reads one row. A task counts while its phase is `submitting` or `tracking` and it names
        // its provider and account, as the count did. A later migration that rebuilds `tasks`
        // must create these triggers again. PostgreSQL keeps counting: a counter row there would
        // be one more row lock, taken by every task's end while it holds the task's row and
        // before its budget's, against creates that hold a budget's row before the slot.
        if (dialect === 'postgres') return;
        // Releases before the migrations of a start ran in one transaction on SQLite (see
        // `database.ts`) ran them statement by statement: one stopped halfway there is run again
        // from the start here, so each step may find its work done (the count is made again, the
        // triggers kept).
        await sql`create table if not exists account_in_flight (provider text not null, account text not null, tasks integer not null, primary key (provider, account)) without rowid`.execute(db);
        await sql`delete from account_in_flight`.execute(db);
        await sql`insert into account_in_flight (provider, account, tasks)
          select provider, account, count(*) from tasks
          where phase in ('submitting', 'tracking') and provider is not null and account is not null
          group by provider, account`.execute(db);
        const holds = (row: 'new' | 'old') =>
          sql.raw(`(${row}.phase in ('submitting', 'tracking') and ${row}.provider is not null and ${row}.account is not null)`);
        const add = sql`insert into account_in_flight (provider, account, tasks) select new.provider, new.account, 1 where ${holds('new')}
          on conflict (provider, account) do update set tasks = tasks + 1`;
        const remove = sql`update account_in_flight set tasks = tasks - 1 where ${holds('old')} and provider = old.provider and account = old.account`;
        await sql`create trigger if not exists tasks_in_flight_added after insert on tasks when ${holds('new')} begin ${add}; end`.execute(db);
        await sql`create trigger if not exists tasks_in_flight_moved after update of phase, provider, account on tasks
          when ${holds('old')} is not ${holds('new')} or old.provider is not new.provider or old.account is not new.account
          begin ${remove}; ${add}; end`.execute(db);
        await sql`create trigger if not exists tasks_in_flight_removed after delete on tasks when ${holds('old')} begin ${remove}; end`.execute(db);
      },
      async down(db: Kysely<unknown>) {
        if (dialect === 'postgres') return;
        for (const name of ['tasks_in_flight_added', 'tasks_in_flight_moved', 'tasks_in_flight_removed']) {
          await sql`drop trigger if exists ${sql.raw(name)}`.execute(db);
        }
        await db.schema.dropTable('account_in_flight').ifExists().execute();
      },
    },
    '0015_output_ids': {
      async up(db: Kysely<unknown>) {
        // The provider's ids of results (what video-extend and lip-sync take as `video_id`) and the
        // tenant whose task made each: the provider's account is every tenant's, so a source video
        // named by id must not be another tenant's. Filled from the outputs already stored.
        // On SQLite a start of a release before one transaction held a start's migrations, stopped
        // during the pass below, left the table behind, unrecorded: this makes it again where it
        // is not, and the pass notes what is not noted yet.
        await db.schema
          .createTable('output_ids')
          .ifNotExists()
          .addColumn('upstream_id', 'text', (c) => c.notNull())
          .addColumn('task_id', 'text', (c) => c.notNull().references('tasks.id').onDelete('cascade'))
          .addColumn('tenant', 'text', (c) => c.notNull())
          .addColumn('provider', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('output_ids_pk', ['upstream_id', 'task_id'])
          .execute();
        await backfillOutputIds(db);
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropTable('output_ids').ifExists().execute();
      },
    },
    '0016_usage_account': {
      async up(db: Kysely<unknown>) {
        // Each account of a provider is billed on its own (its own key, its own invoice): usage
        // lines name the account that holds the task, so a report can be split by it. Lines of
        // the tasks already held take the task's account. On SQLite a start of a release before one
        // transaction held a start's migrations, stopped between the two statements, left the
        // column behind, unrecorded: this fills it in.
        const added =
          dialect === 'sqlite' &&
          (await sql<{ name: string }>`select name from pragma_table_info('task_usage') where name = 'account'`.execute(db)).rows.length > 0;
        if (!added) await db.schema.alterTable('task_usage').addColumn('account', 'text').execute();
        await sql`update task_usage set account = (select tasks.account from tasks where tasks.id = task_usage.task_id)`.execute(db);
      },
      async down(db: Kysely<unknown>) {
        await db.schema.alterTable('task_usage').dropColumn('account').execute();
      },
    },
    '0017_usage_video_seconds': {
      async up(db: Kysely<unknown>) {
        // Migration 0005 wrote the usage lines of the tasks a database already held with no seconds
        // of video: the succeeded ones among them counted none in `video_seconds` and
        // `cost_per_second`. Their seconds are counted now from the task's outputs and request, as
        // a task's end counts them; a line a task's end wrote says 0 only where this counts 0 too,
        // so going over every succeeded line at 0 changes only those. Run again, it finds them done.
        await backfillVideoSeconds(db);
      },
      async down() {
        // The seconds are as right under the older schema: nothing to undo.
      },
    },
    '0018_task_list_filters': {
      async up(db: Kysely<unknown>) {
        // `GET /v1/videos?status=…` (and `provider`, `model`), newest first: through the tenant's
        // index alone, a filter that few of the tenant's tasks match (`status=processing`, which
        // the console's list asks every few seconds; a model or provider the tenant seldom uses)
        // walked every task the tenant ever made to fill a page. One index per filter, led by the
        // tenant and ending in the list's order, gives the page at once. Each costs writes: the
        // model's is written once per task, the provider's when a task goes to a provider, the
        // status's when its status changes (two or three times in a task's life).
        for (const column of ['status', 'provider', 'model'] as const) {
          await db.schema.createIndex(`tasks_tenant_${column}`).on('tasks').columns(['tenant', column, 'created_at', 'id']).execute();
        }
        // SQLite plans by the statistics ANALYZE wrote, when an operator ran it: they know the
        // older indexes and not these, which it then takes for very selective, and an unfiltered
        // list went through one of them and sorted every task of the tenant. Statistics of these
        // three are gathered too (a pass over each). PostgreSQL keeps statistics per column.
        if (dialect === 'sqlite' && (await sql`select name from sqlite_master where name = 'sqlite_stat1'`.execute(db)).rows.length > 0) {
          for (const column of ['status', 'provider', 'model'] as const) await sql`analyze ${sql.raw(`tasks_tenant_${column}`)}`.execute(db);
        }
      },
      async down(db: Kysely<unknown>) {
        for (const column of ['status', 'provider', 'model'] as const) {
          await db.schema.dropIndex(`tasks_tenant_${column}`).ifExists().execute();
        }
      },
    },
    '0019_tenant_turns': {
      async up(db: Kysely<unknown>) {
        // When a task of each tenant last took a slot of each provider, written as it takes one
        // (one row per tenant and provider): the queue is fair between tenants, and a freed slot
        // goes, between tenants holding as many of the provider's slots, to the one served longest
        // ago (with a cap of one, every tenant holds none as a slot frees). A new table only:
        // replicas still on the release before neither read nor write it.
        await db.schema
          .createTable('tenant_turns')
          .ifNotExists()
          .addColumn('provider', 'text', (c) => c.notNull())
          .addColumn('tenant', 'text', (c) => c.notNull())
          .addColumn('served_at', time, (c) => c.notNull())
          .addPrimaryKeyConstraint('tenant_turns_pk', ['provider', 'tenant'])
          .execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.dropTable('tenant_turns').ifExists().execute();
      },
    },
    '0020_attempt_time_limit': {
      async up(db: Kysely<unknown>) {
        // The provider's time limit a create was sent under: a lookup's "not found" proves the
        // create absent only once that limit (+ a margin) has passed since it left, also after a
        // restart that changed `timeout_ms`. Null on rows of earlier releases (the limit in force).
        await db.schema.alterTable('attempts').addColumn('timeout_ms', 'integer').execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.alterTable('attempts').dropColumn('timeout_ms').execute();
      },
    },
    '0021_attempt_named_task': {
      async up(db: Kysely<unknown>) {
        // The upstream task a create's own server-error answer named, kept on its attempt until
        // the provider's status is asked about it (not during a graceful stop): the next start,
        // or another replica, adopts it when shown instead of failing a task the provider may be
        // making and billing. Not `provider_task_id`, which counts as found without asking.
        await db.schema.alterTable('attempts').addColumn('named_task_id', 'text').execute();
      },
      async down(db: Kysely<unknown>) {
        await db.schema.alterTable('attempts').dropColumn('named_task_id').execute();
      },
    },
    '0022_finished_task_index': {
      async up(db: Kysely<unknown>) {
        // `fastest` counts a failure of a task the provider accepted as a delivery that never
        // came: the recent finished tasks per provider, successes and failures, in one index.
        await sql`drop index if exists tasks_succeeded`.execute(db);
        await sql`create index tasks_finished on tasks (provider, completed_at) where status in ('succeeded', 'failed')`.execute(db);
      },
      async down(db: Kysely<unknown>) {
        await sql`drop index if exists tasks_finished`.execute(db);
        await sql`create index tasks_succeeded on tasks (provider, completed_at) where status = 'succeeded'`.execute(db);
      },
    },
    '0023_output_recopy': {
      async up(db: Kysely<unknown>) {
        // An output given up on because the gateway's own storage failed (a full disk, S3 down) is
        // copied again later, after its task succeeded: when the next later copy of a task is due,
        // kept beside its outputs. Partial: only the few tasks waiting for one are in the index,
        // and the re-copy pass repeats its WHERE term. Null on every row written before.
        await db.schema.alterTable('tasks').addColumn('recopy_at', time).execute();
        await sql`create index tasks_recopy on tasks (recopy_at) where recopy_at is not null`.execute(db);
      },
      async down(db: Kysely<unknown>) {
        await sql`drop index if exists tasks_recopy`.execute(db);
        await db.schema.alterTable('tasks').dropColumn('recopy_at').execute();
      },
    },
    '0024_counted_usage_lines': {
      async up(db: Kysely<unknown>) {
        // A budget row made mid-period counted the tenant's settled lines of its period that no
        // budget counted, and left them unmarked. A row now marks the lines it counts with its
        // period, and adds those still unmarked (created while its budget was out of the
        // configuration) at its next use: the lines every existing row has already counted are
        // marked here, so none of them is counted twice. Lines that finished while a budget was
        // out before this upgrade cannot be told from those and are marked too: no budget counts
        // them (an undercount, never a line counted twice).
        const rows = await sql<{ tenant: string; period: string }>`select tenant, period from budgets`.execute(db);
        for (const { tenant, period } of rows.rows) {
          const window = periodWindow(period);
          if (!window) continue;
          await sql`
            update task_usage set budget_period = ${period}
            where tenant = ${tenant} and created_at >= ${window.start} and created_at < ${window.end}
              and settled = 1 and budget_period is null`.execute(db);
        }
      },
      async down() {
        // The marks are read only by the release that wrote them; earlier releases pass them by.
      },
    },
  };
}

/** The bounds (ms, end exclusive) of a budget period's key: `2026-11` a UTC month, `2026-11-22` a UTC day. */
function periodWindow(key: string): { start: number; end: number } | undefined {
  const month = /^(\d{4})-(\d{2})$/.exec(key);
  if (month) return { start: Date.UTC(Number(month[1]), Number(month[2]) - 1, 1), end: Date.UTC(Number(month[1]), Number(month[2]), 1) };
  const day = /^(\d{4})-(\d{2})-(\d{2})$/.exec(key);
  if (day) return { start: Date.UTC(Number(day[1]), Number(day[2]) - 1, Number(day[3])), end: Date.UTC(Number(day[1]), Number(day[2]) - 1, Number(day[3]) + 1) };
  return undefined;
}

/** The provider's ids of a task's results, from its outputs column as stored (`upstreamId`). */
function upstreamIdsOfOutputs(outputsJson: string): string[] {
  let items: unknown;
  try {
    items = JSON.parse(outputsJson);
  } catch {
    return [];
  }
  if (!Array.isArray(items)) return [];
  const ids = items.flatMap((item) => {
    const id: unknown = item && typeof item === 'object' ? (item as { upstreamId?: unknown }).upstreamId : undefined;
    return typeof id === 'string' && isNotableOutputId(id) ? [id] : [];
  });
  return [...new Set(ids)];
}

/**
 * The seconds of video a succeeded task delivered, from its outputs and request columns as stored:
 * what a task's end writes on its usage line (`deliveredSeconds` in the spend ledger, which a test
 * holds equal to this). Its videos' lengths when each says one, else the duration asked for (or
 * its timed shots'), else none. Outputs stored before result custody (`{type, url, duration}`) are
 * videos unless they say `image`. A column that does not parse counts as empty.
 */
export function deliveredSecondsOfColumns(outputsJson: string, requestJson: string): number {
  const parse = (json: string): unknown => {
    try {
      return JSON.parse(json);
    } catch {
      return undefined;
    }
  };
  const items = parse(outputsJson);
  const videos = (Array.isArray(items) ? items : []).flatMap((item) => {
    if (!item || typeof item !== 'object') return [];
    const output = item as { type?: unknown; duration?: unknown; upstreamUrl?: unknown };
    const type = typeof output.upstreamUrl === 'string' ? output.type : output.type === 'image' ? 'image' : 'video';
    return type === 'video' ? [output.duration] : [];
  });
  if (videos.length === 0) return 0;
  if (videos.every((duration) => typeof duration === 'number')) return (videos as number[]).reduce((sum, duration) => sum + duration, 0);
  const request = parse(requestJson) as { duration?: unknown; multi_shot?: unknown } | undefined;
  if (request && typeof request === 'object') {
    if (typeof request.duration === 'number') return request.duration;
    const shots = Array.isArray(request.multi_shot) ? (request.multi_shot as { duration?: unknown }[]) : undefined;
    if (shots?.every((shot) => typeof shot?.duration === 'number')) return shots.reduce((sum, shot) => sum + (shot.duration as number), 0);
  }
  return 0;
}

/** The seconds of video on the usage lines of succeeded tasks that say none (migration 0017), a page at a time. */
async function backfillVideoSeconds(db: Kysely<unknown>): Promise<void> {
  const lines = db as unknown as Kysely<{
    tasks: { id: string; outputs_json: string; request_json: string };
    task_usage: { task_id: string; status: string; video_seconds: number };
  }>;
  let after = '';
  for (;;) {
    const page = await lines
      .selectFrom('task_usage')
      .innerJoin('tasks', 'tasks.id', 'task_usage.task_id')
      .select(['task_usage.task_id', 'tasks.outputs_json', 'tasks.request_json'])
      .where('task_usage.status', '=', 'succeeded')
      .where('task_usage.video_seconds', '=', 0)
      .where('task_usage.task_id', '>', after)
      .orderBy('task_usage.task_id')
      .limit(200)
      .execute();
    for (const line of page) {
      const seconds = deliveredSecondsOfColumns(line.outputs_json, line.request_json);
      if (seconds > 0) await lines.updateTable('task_usage').set({ video_seconds: seconds }).where('task_id', '=', line.task_id).execute();
    }
    const last = page[page.length - 1];
    if (!last || page.length < 200) return;
    after = last.task_id;
  }
}

/** Rows of `output_ids` for the outputs tasks hold already, a page of tasks at a time. */
async function backfillOutputIds(db: Kysely<unknown>): Promise<void> {
  const tasks = db as unknown as Kysely<{
    tasks: { id: string; tenant: string; provider: string | null; outputs_json: string };
    output_ids: { upstream_id: string; task_id: string; tenant: string; provider: string };
  }>;
  let after = '';
  for (;;) {
    const page = await tasks
      .selectFrom('tasks')
      .select(['id', 'tenant', 'provider', 'outputs_json'])
      .where('id', '>', after)
      .where('outputs_json', 'like', '%"upstreamId":"%')
      .orderBy('id')
      .limit(200)
      .execute();
    const rows = page.flatMap((task) =>
      task.provider === null ? [] : upstreamIdsOfOutputs(task.outputs_json).map((id) => ({ upstream_id: id, task_id: task.id, tenant: task.tenant, provider: task.provider! })),
    );
    if (rows.length > 0) await tasks.insertInto('output_ids').values(rows).onConflict((conflict) => conflict.doNothing()).execute();
    const last = page[page.length - 1];
    if (!last || page.length < 200) return;
    after = last.id;
  }
}

/** SQLite cannot drop a NOT NULL constraint: the table is rebuilt with the same rows and indexes. */
async function rebuildSqliteDeliveriesWithNullableTask(db: Kysely<unknown>): Promise<void> {
  const time = 'bigint' as const;
  await db.schema
    .createTable('deliveries_rebuilt')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('task_id', 'text', (c) => c.references('tasks.id').onDelete('cascade'))
    .addColumn('tenant', 'text', (c) => c.notNull())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('payload_json', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', time, (c) => c.notNull())
    .addColumn('last_status', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('created_at', time, (c) => c.notNull())
    .addColumn('delivered_at', time)
    .addColumn('lease_owner', 'text')
    .addColumn('lease_until', time)
    .execute();
  const columns = sql.raw(
    'id, task_id, tenant, url, event_type, payload_json, status, attempts, next_attempt_at, last_status, last_error, ' +
      'created_at, delivered_at, lease_owner, lease_until',
  );
  await sql`insert into deliveries_rebuilt (${columns}) select ${columns} from deliveries`.execute(db);
  await db.schema.dropTable('deliveries').execute();
  await db.schema.alterTable('deliveries_rebuilt').renameTo('deliveries').execute();
  await db.schema.createIndex('deliveries_due').on('deliveries').columns(['status', 'next_attempt_at']).execute();
  await db.schema.createIndex('deliveries_task').on('deliveries').column('task_id').execute();
}

export class CodeMigrationProvider implements MigrationProvider {
  constructor(private readonly dialect: Dialect) {}

  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations(this.dialect);
  }
}
