// The remo console's service worker (docs/console.md).
