/**
 * Runs once before any test file: builds the web console from the current sources into
 * `console/dist`, which the Chromium tests drive and the `/console` route tests serve. Built here,
 * before the files run side by side, so no file reads `console/dist` while another rebuilds it.
 */
import { buildConsole } from '../scripts/build-console.js';

export default async function setup(): Promise<void> {
  await buildConsole();
}
