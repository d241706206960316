/**
 * The models the gateway serves (`GET /v1/models`): each model's operations, and the providers
 * that serve each: the qualities they offer, the call it becomes upstream and the fields it needs
 * there. A disabled provider is listed, and marked: it serves nothing until it is enabled again.
 */
import type { ModelList } from '../../../packages/client/src/index.js';
import { PageHeading } from '../components/page-heading.js';
import { ProblemMessage } from '../components/problem-message.js';
import { operationNoun } from '../display.js';
import { useSession } from '../gateway-context.js';
import { useGatewayData } from '../use-gateway-data.js';

type ModelEntry = ModelList['data'][number];
type ServingProvider = ModelEntry['operations'][number]['providers'][number];

/** The fields a request must carry to be served so (a provider may serve one operation two ways, each needing its own). */
function requiredFields(provider: ServingProvider): string[] {
  return Object.entries(provider.fields)
    .filter(([, rule]) => rule.required)
    .map(([field]) => field);
}

/** A field's name as the page shows it. */
const fieldName = (field: string) => <code>{field}</code>;

function ServedBy({ provider }: { provider: ServingProvider }) {
  // Each field required alone, then each group of which one is (`prompt or multi_shot`).
  const needs = [
    ...requiredFields(provider).map((field) => fieldName(field)),
    // Older gateways do not list such groups.
    ...(provider.required_one_of ?? []).map((group) => (
      <>
        {group.map((field, index) => (
          <span key={field}>
            {index > 0 ? ' or ' : ''}
            {fieldName(field)}
          </span>
        ))}
      </>
    )),
  ];
  return (
    <li data-provider={provider.provider}>
      <strong>{provider.provider}</strong>
      {provider.enabled ? null : (
        <>
          {' '}
          <span class="badge provider-disabled">disabled</span>
        </>
      )}
      <div class="muted small">
        {provider.qualities.length > 0 ? provider.qualities.join(', ') : 'one quality'} · upstream <code>{provider.upstream}</code>
        {needs.length > 0 ? (
          <>
            {' · needs '}
            {needs.map((need, index) => (
              <span key={index}>
                {index > 0 ? ', ' : ''}
                {need}
              </span>
            ))}
          </>
        ) : null}
      </div>
    </li>
  );
}

function ModelPanel({ entry }: { entry: ModelEntry }) {
  const headingId = `model-${entry.model}`;
  return (
    <section class="panel" data-model={entry.model} aria-labelledby={headingId}>
      <h2 id={headingId}>{entry.model}</h2>
      <div class="table-scroll" role="region" aria-label={`${entry.model} operations`} tabIndex={0}>
        {/* One card per operation at phone width (roles kept), as the other pages' tables. */}
        <table class="models responsive" role="table">
          <caption class="visually-hidden">{entry.model}: each operation and the providers serving it</caption>
          <thead>
            <tr role="row">
              <th scope="col">Operation</th>
              <th scope="col">Makes</th>
              <th scope="col">Served by</th>
            </tr>
          </thead>
          <tbody>
            {entry.operations.map((operation) => (
              <tr key={operation.operation} role="row" data-operation={operation.operation}>
                <th scope="row" role="rowheader" class="primary-cell">
                  {operation.operation}
                </th>
                <td role="cell" data-label="Makes">
                  {operationNoun(operation.operation)}
                </td>
                <td role="cell" data-label="Served by" class="served-by-cell">
                  <ul class="served-by">
                    {operation.providers.map((provider, index) => (
                      <ServedBy key={`${provider.provider}-${index}`} provider={provider} />
                    ))}
                  </ul>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

export function ModelsPage() {
  const { client } = useSession();
  const models = useGatewayData((_c, signal) => client.listModels({ signal }), [client]);
  const list = models.data?.data ?? [];
  return (
    <section>
      <PageHeading title="Models" />
      <p class="muted small">
        Each model this gateway serves, its operations, and the providers serving each: the qualities they offer, the call a request
        becomes upstream and the fields it needs there. A request is routed among the enabled providers of its model and operation.
      </p>
      <ProblemMessage error={models.error} retrying />
      {list.length > 0 ? (
        list.map((entry) => <ModelPanel key={entry.model} entry={entry} />)
      ) : models.loading ? (
        <p class="muted">Loading…</p>
      ) : models.data ? (
        <div class="empty">
          <p>This gateway serves no model: it has no provider configured.</p>
        </div>
      ) : null}
    </section>
  );
}
