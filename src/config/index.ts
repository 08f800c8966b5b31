/** Config loading: the API the rest of peftctl uses (see docs/ARCHITECTURE.md "Config loading"). */
export { formatDiagnostic, SET_ORIGIN, type Diagnostic } from "./diagnostics.ts";
export { checkExperiment, loadExperiment, type CheckResult, type LoadedExperiment, type LoadOptions } from "./load.ts";
export * from "./schema.ts";
