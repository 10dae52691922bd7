/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  // Type checking is `npm run typecheck`; here ts-jest only transpiles (isolatedModules), which keeps the VM run quick.
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json' }] },
  testMatch: ['<rootDir>/test/**/*.test.ts'],
  // Inside the VM the checkout is read-only under an overlay; the host run warms this cache for it.
  cacheDirectory: '<rootDir>/node_modules/.cache/jest',
  // Under qemu TCG a syscall-heavy test is ~20x slower than on the host.
  testTimeout: 120000,
};
