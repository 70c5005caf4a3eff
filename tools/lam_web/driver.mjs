// Browser side of tools/lam_web_check.py: open check.html in headless Chromium (playwright-core,
// the system's /usr/bin/chromium), set a camera and ARKit weights, screenshot each pose.
// Usage: node driver.mjs job.json   (job: {url, width, height, chromium, user_data_dir, timeout_s,
// camera: {position, quaternion, fov_deg, near, far}, shots: [{name, weights, out}]})
// Prints one JSON line: {renderer, splat_count, shots: [...], console: [...]}.
import fs from 'node:fs';
import { chromium } from 'playwright-core';

const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const log = [];
const step = (what) => process.stderr.write(`[driver ${(performance.now() / 1000).toFixed(1)} s] ${what}\n`);
// Whatever hangs (a wedged GPU process, a page that never settles), the driver ends in time.
setTimeout(() => {
  console.log(JSON.stringify({ error: `timed out after ${job.timeout_s} s`, console: log }));
  process.exit(2);
}, job.timeout_s * 1000).unref();
const flags = [
  '--headless=new', '--no-sandbox', '--no-first-run', '--disable-quic', '--disable-sync',
  '--disable-background-networking', '--disable-component-update', '--disable-extensions',
  '--disable-default-apps', '--mute-audio', '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
  '--ignore-gpu-blocklist', '--force-device-scale-factor=1',
];
step('launch chromium');
const context = await chromium.launchPersistentContext(job.user_data_dir, {
  executablePath: job.chromium,
  headless: true,
  args: flags,
  viewport: { width: job.width, height: job.height },
  deviceScaleFactor: 1,
  timeout: job.timeout_s * 1000,
});
let exitCode = 0;
try {
  // Nothing leaves localhost: any other request is refused.
  await context.route((url) => !['127.0.0.1', 'localhost'].includes(url.hostname) && url.protocol !== 'blob:'
    && url.protocol !== 'data:', (route) => { log.push(`blocked ${route.request().url()}`); route.abort(); });
  const page = context.pages()[0] || await context.newPage();
  page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`.slice(0, 400)));
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`.slice(0, 400)));
  page.setDefaultTimeout(job.timeout_s * 1000);
  step('open page');
  await page.goto(job.url);
  step('wait for the avatar');
  await page.waitForFunction(() => window.lamCheck && (window.lamCheck.ready() || window.lamCheck.error),
    null, { timeout: job.timeout_s * 1000, polling: 200 });
  const error = await page.evaluate(() => window.lamCheck.error);
  if (error) throw new Error(`the page failed: ${error}`);
  const renderer = await page.evaluate(() => window.lamCheck.webgl());
  const splatCount = await page.evaluate(() => window.lamCheck.splatCount());
  const cam = job.camera;
  await page.evaluate((c) => window.lamCheck.setView(c.position, c.quaternion, c.fov_deg, c.near, c.far), cam);
  const shots = [];
  for (const shot of job.shots) {
    step(`shot ${shot.name}`);
    await page.evaluate((w) => window.lamCheck.setWeights(w), shot.weights);
    const settled = await page.evaluate(() => window.lamCheck.settle());
    step(`settled ${JSON.stringify(settled)}`);
    await page.locator('#stage canvas').first().screenshot({ path: shot.out, animations: 'disabled' });
    shots.push({ name: shot.name, out: shot.out });
  }
  console.log(JSON.stringify({ renderer, splat_count: splatCount, shots, console: log }));
} catch (e) {
  console.log(JSON.stringify({ error: String(e && e.message || e), console: log }));
  exitCode = 1;
} finally {
  await context.close();
}
process.exit(exitCode);
