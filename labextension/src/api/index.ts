/** The REST API of the server extension: models and client, for jobs and sweeps. */
export * from './models';
export * from './client';
export * from './sweeps';
