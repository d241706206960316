/**
 * `/v1/models` and `/v1/providers`.
 */
import { Router } from 'express';
import type { ProviderCatalog } from '../core/tasks/provider-catalog.js';
import { noQuery, rememberMountPath } from './middleware.js';

export function catalogRoutes(catalog: ProviderCatalog): Router {
  const router = Router();
  router.use(rememberMountPath());
  router.get('/models', noQuery(), (_req, res) => {
    res.json(catalog.models());
  });
  router.get('/providers', noQuery(), async (_req, res) => {
    res.json(await catalog.providers());
  });
  return router;
}
