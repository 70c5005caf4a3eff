// Page side of tools/lam_web_check.py: drive LAM's web renderer through its public entry point
// (GaussianSplatRenderer.getInstance) and expose a small API to the browser driver (driver.mjs).
import {
  GaussianSplatRenderer, SceneRevealMode,
} from './node_modules/gaussian-splat-renderer-for-lam/build/gaussian-splat-renderer-for-lam.module.js';

const query = new URLSearchParams(location.search);
const width = Number(query.get('w') || 512);
const height = Number(query.get('h') || 512);
const stage = document.getElementById('stage');
stage.style.width = `${width}px`;
stage.style.height = `${height}px`;

// The ARKit weights the avatar should show. The player multiplies each weight by its built-in
// "motionConfig" (scale, offset) before it reaches the splats (e.g. jawOpen x1.2), so the page
// feeds it (w - offset) / scale: what the splats get is then exactly the weight asked for.
let wanted = {};
let renderer;

function playerInput() {
  const config = renderer && renderer.motioncfg;
  const input = {};
  for (const [name, value] of Object.entries(wanted)) {
    const scale = config && config.scale[name] !== undefined ? config.scale[name] : 1;
    const offset = config && config.offset[name] !== undefined ? config.offset[name] : 0;
    input[name] = (value - offset) / scale;
  }
  return input;
}

function viewer() {
  return renderer && renderer.viewer;
}

function frames(n) {
  return new Promise((resolve) => {
    const step = (left) => (left <= 0 ? resolve() : requestAnimationFrame(() => step(left - 1)));
    step(n);
  });
}

window.lamCheck = {
  error: null,
  // True once the splats are loaded, sorted and drawn at least once.
  ready() {
    const v = viewer();
    return !!(v && v.splatMesh && v.splatRenderReady && v.splatMesh.getSplatCount() > 0);
  },
  splatCount() {
    return viewer().splatMesh.getSplatCount();
  },
  // Camera in three.js terms: position [3], quaternion [x, y, z, w] (camera looks down -Z, +Y up),
  // vertical field of view in degrees, near and far planes.
  setView(position, quaternion, fovDeg, near, far) {
    const camera = viewer().camera;
    camera.position.fromArray(position);
    camera.quaternion.fromArray(quaternion);
    camera.fov = fovDeg;
    camera.near = near;
    camera.far = far;
    camera.updateProjectionMatrix();
    camera.updateMatrixWorld(true);
    viewer().forceRenderNextFrame();
  },
  setWeights(weights) {
    wanted = { ...weights };
    viewer().forceRenderNextFrame();
  },
  // Let the player run: the morph update and bone texture reach the shader within a frame; the
  // player re-sorts continuously (each frame starts a sort when none runs), so wait for a sort that
  // began after the change to finish, then draw a few frames.
  async settle(n = 4) {
    await frames(n);
    const before = viewer().sortPromise;
    for (let i = 0; i < 100 && viewer().sortPromise === before; i++) await frames(1);
    await viewer().sortPromise;
    viewer().forceRenderNextFrame();
    await frames(3);
    return { frames: viewer().consecutiveRenderFrames, newSort: viewer().sortPromise !== before };
  },
  webgl() {
    const gl = document.createElement('canvas').getContext('webgl2');
    if (!gl) return null;
    const debug = gl.getExtension('WEBGL_debug_renderer_info');
    return debug ? gl.getParameter(debug.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
  },
};

window.addEventListener('error', (e) => { window.lamCheck.error = String(e.message || e); });
window.addEventListener('unhandledrejection', (e) => { window.lamCheck.error = String(e.reason); });

GaussianSplatRenderer.getInstance(stage, query.get('zip'), {
  getExpressionData: playerInput,
  backgroundColor: query.get('bg') || '0x000000',
}).then((instance) => {
  renderer = instance;
  if (!instance) {
    window.lamCheck.error = 'GaussianSplatRenderer.getInstance returned nothing (see console)';
    return;
  }
  // The player fades splats in by their distance from the origin, one step per frame; at software
  // WebGL's ~2 frames a second that takes minutes. Instant reveal is the fade's end state.
  instance.viewer.sceneRevealMode = SceneRevealMode.Instant;
  window.lamCheck.renderer = instance;
});
