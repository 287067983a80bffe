// @ts-check
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Type-checked typescript-eslint. The rules that matter most in an async NestJS server:
 * no-floating-promises (an unhandled rejection crashes the process), no-misused-promises
 * (an async callback where a sync one is expected swallows its errors) and
 * switch-exhaustiveness-check (a new enum member must be handled everywhere).
 * Formatting is Prettier's job (`npm run format:check`), not ESLint's.
 */
export default tseslint.config(
  {
    ignores: [
      'dist/',
      'client/dist/',
      'node_modules/',
      'coverage/',
      'data/',
      'test-results/',
      '.test-build/',
      '.bench-build/',
      'bench/results/',
    ],
  },
  eslint.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: true },
      ],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      // Nest modules and DTOs are classes with only decorators or static members.
      '@typescript-eslint/no-extraneous-class': 'off',
    },
  },
  // Import boundaries (docs/architecture.md § Boundaries). Each rule fails `npm run check`.
  {
    // Only the chat module turns domain events into socket emits: nothing else imports it
    // (the AsyncAPI generator in src/docs reads its contract; app.module and setup wire it).
    files: ['src/**/*.ts'],
    ignores: ['src/chat/**', 'src/docs/**', 'src/app.module.ts', 'src/setup.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/chat/*', '!**/chat/contract'],
              message: 'Only src/chat turns events into socket emits: emit a domain event instead.',
            },
          ],
        },
      ],
    },
  },
  {
    // The ground floor (common, config, database, redis) imports no feature.
    files: [
      'src/common/**/*.ts',
      'src/config/**/*.ts',
      'src/database/**/*.ts',
      'src/redis/**/*.ts',
    ],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                '**/access/*',
                '**/auth/*',
                '**/chat/*',
                '**/events/*',
                '**/messages/*',
                '**/personas/*',
                '**/rooms/*',
                '**/users/*',
              ],
              message: 'The ground floor (common, config, database, redis) imports no feature.',
            },
          ],
        },
      ],
    },
  },
  {
    // SQL lives in a module's store: services hold policy, not queries.
    files: ['src/**/*.ts'],
    ignores: [
      'src/**/*.store.ts',
      'src/messages/message-store.ts',
      'src/database/**',
      'src/**/*.spec.ts',
    ],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector:
            'CallExpression[callee.property.name=/^(query|createQueryBuilder|getRepository)$/]',
          message: "SQL belongs in the module's store (*.store.ts).",
        },
        {
          selector: 'Decorator[expression.callee.name="InjectRepository"]',
          message: "Repositories belong in the module's store (*.store.ts).",
        },
      ],
    },
  },
  {
    // Tests read response bodies (`res.body` is `any` in supertest) and pass async callbacks
    // to Jest: the unsafe-* rules would demand a cast on every assertion.
    files: ['test/**/*.ts', 'src/**/*.spec.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // Plain JavaScript config files are not in tsconfig: lint them without type information.
    files: ['**/*.{js,cjs,mjs}'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      globals: { module: 'writable', require: 'readonly', __dirname: 'readonly' },
    },
  },
);
