import { beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as apps from 'kubernetes-models/apps/v1';
import type { IDeployment, IStatefulSet } from 'kubernetes-models/apps/v1';
import * as autoscaling from 'kubernetes-models/autoscaling/v2';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import * as networking from 'kubernetes-models/networking.k8s.io/v1';
import type {
  IIngress,
  INetworkPolicy,
  INetworkPolicyPeer,
  INetworkPolicyPort,
} from 'kubernetes-models/networking.k8s.io/v1';
import * as policy from 'kubernetes-models/policy/v1';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import * as core from 'kubernetes-models/v1';
import type { IConfigMap, IContainer, IPodSpec, IProbe, ISecret, IService } from 'kubernetes-models/v1';
import * as prettier from 'prettier';
import YAML from 'yaml';
import { z } from 'zod';
import { DEFAULT_STREAM_NAMES, WORKER_CONSUMER } from '@syncline/contracts';
import { conflictServiceEnvSchema } from '../../apps/conflict-service/src/config.js';
import { gatewayEnvSchema } from '../../apps/gateway/src/config.js';
import { syncWorkerEnvSchema } from '../../apps/sync-worker/src/config.js';

/**
 * Renders each kustomize overlay of deploy/k8s and checks what a cluster would otherwise
 * only tell at apply time, or at the first incident: schemas, references between objects,
 * probes, network flows, the services' own configuration parsing, and the sizing rules the
 * comments in the manifests promise.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const K8S = path.join(ROOT, 'deploy/k8s');
const NAMESPACE = 'syncline';
const APP_IMAGE = 'ghcr.io/syncline/syncline';
const OVERLAYS = ['dev', 'production'] as const;
type Overlay = (typeof OVERLAYS)[number];

/** Objects the overlays refer to but do not contain: the operator creates them. */
const EXTERNAL_SECRETS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  // kubectl -n syncline create secret generic syncline-secrets --from-literal=jwt-secret=…
  'syncline-secrets': { 'jwt-secret': 'an-operator-provided-secret-of-at-least-32-characters' },
  // The Ingress certificate (cert-manager or by hand).
  'syncline-tls': { 'tls.crt': '', 'tls.key': '' },
};

/** Keys of the `<cluster>-app` secret CloudNativePG generates for a Cluster's owner. */
const CNPG_APP_SECRET_KEYS = ['username', 'password', 'host', 'port', 'dbname', 'uri', 'jdbc-uri', 'pgpass'];
/** Ports of a CloudNativePG instance pod: PostgreSQL and the instance manager's status. */
const CNPG_POD_PORTS = [5432, 8000];

/** Pods of other namespaces the policies must let in (or not), with their usual labels. */
const OUTSIDE = {
  ingressNginx: {
    namespace: 'ingress-nginx',
    labels: { 'app.kubernetes.io/name': 'ingress-nginx', 'app.kubernetes.io/component': 'controller' },
  },
  prometheus: { namespace: 'monitoring', labels: { 'app.kubernetes.io/name': 'prometheus' } },
  keda: { namespace: 'keda', labels: { 'app.kubernetes.io/name': 'keda-operator' } },
  kubeDns: { namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' } },
  cnpgOperator: { namespace: 'cnpg-system', labels: { 'app.kubernetes.io/name': 'cloudnative-pg' } },
  elsewhere: { namespace: 'default', labels: { app: 'something-else' } },
} satisfies Record<string, Endpoint>;

/** Which service's configuration schema a container's command runs. */
const SERVICE_SCHEMAS: Readonly<Record<string, z.ZodType>> = {
  'apps/gateway/dist/main.js': gatewayEnvSchema,
  'apps/sync-worker/dist/main.js': syncWorkerEnvSchema,
  'apps/conflict-service/dist/main.js': conflictServiceEnvSchema,
};
/** Variables the Node.js runtime reads, not the services' configuration. */
const RUNTIME_ENV = new Set(['NODE_OPTIONS']);

interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string;
    readonly labels?: Readonly<Record<string, string>>;
    readonly annotations?: Readonly<Record<string, string>>;
  };
  readonly spec?: unknown;
  readonly data?: Readonly<Record<string, string>>;
}

interface LabelSelector {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: readonly { key: string; operator: string; values?: string[] }[];
}

interface ScaledObject extends KubeObject {
  readonly spec: {
    readonly scaleTargetRef: { readonly name: string; readonly kind?: string };
    readonly minReplicaCount?: number;
    readonly maxReplicaCount?: number;
    readonly fallback?: { readonly failureThreshold: number; readonly replicas: number };
    readonly triggers: readonly { readonly type: string; readonly metadata: Readonly<Record<string, unknown>> }[];
  };
}

interface PostgresCluster extends KubeObject {
  readonly spec: {
    readonly instances: number;
    readonly imageName?: string;
    readonly storage: { readonly size: string };
    readonly bootstrap: { readonly initdb: { readonly database: string; readonly owner: string } };
    readonly postgresql?: { readonly parameters?: Readonly<Record<string, unknown>> };
  };
}

/** A Deployment's or StatefulSet's pods, as the checks see them. */
interface Workload {
  readonly kind: 'Deployment' | 'StatefulSet';
  readonly name: string;
  readonly object: IDeployment | IStatefulSet;
  readonly podLabels: Readonly<Record<string, string>>;
  readonly pod: IPodSpec;
}

interface Endpoint {
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
}

class Render {
  readonly workloads: Workload[];
  readonly services: IService[];
  readonly configMaps: IConfigMap[];
  readonly secrets: ISecret[];
  readonly policies: INetworkPolicy[];
  readonly ingresses: IIngress[];
  readonly hpas: IHorizontalPodAutoscaler[];
  readonly pdbs: IPodDisruptionBudget[];
  readonly scaledObjects: ScaledObject[];
  readonly clusters: PostgresCluster[];

  constructor(readonly objects: readonly KubeObject[]) {
    const of = <T>(kind: string) => objects.filter((o) => o.kind === kind) as unknown as T[];
    this.workloads = [
      ...of<IDeployment>('Deployment').map((object) => workloadOf('Deployment', object)),
      ...of<IStatefulSet>('StatefulSet').map((object) => workloadOf('StatefulSet', object)),
    ];
    this.services = of('Service');
    this.configMaps = of('ConfigMap');
    this.secrets = of('Secret');
    this.policies = of('NetworkPolicy');
    this.ingresses = of('Ingress');
    this.hpas = of('HorizontalPodAutoscaler');
    this.pdbs = of('PodDisruptionBudget');
    this.scaledObjects = of('ScaledObject');
    this.clusters = of('Cluster');
  }

  workload(name: string): Workload {
    const found = this.workloads.find((w) => w.name === name);
    if (!found) throw new Error(`no workload named ${name}`);
    return found;
  }

  service(name: string): IService | undefined {
    return this.services.find((s) => s.metadata?.name === name);
  }

  /** The workloads whose pods a selector picks. */
  selected(selector: LabelSelector | Readonly<Record<string, string>> | undefined): Workload[] {
    const normalized: LabelSelector =
      selector && ('matchLabels' in selector || 'matchExpressions' in selector)
        ? (selector as LabelSelector)
        : { matchLabels: (selector ?? {}) as Readonly<Record<string, string>> };
    return this.workloads.filter((w) => matches(normalized, w.podLabels));
  }

  /** The pods the policies decide about: ours, and the PostgreSQL instances the operator runs. */
  podsOf(selector: LabelSelector | undefined): { labels: Readonly<Record<string, string>>; ports: number[] }[] {
    const ours = this.selected(selector).map((w) => ({
      labels: w.podLabels,
      ports: containersOf(w.pod).flatMap((c) => (c.ports ?? []).map((p) => p.containerPort)),
    }));
    const postgres = this.clusters
      .map((c) => ({ labels: { 'cnpg.io/cluster': c.metadata.name }, ports: CNPG_POD_PORTS }))
      .filter((pod) => matches(selector, pod.labels));
    return [...ours, ...postgres];
  }

  /** `data` of a ConfigMap or Secret the render holds, or of one created outside it. */
  values(kind: 'ConfigMap' | 'Secret', name: string): Readonly<Record<string, string>> | undefined {
    if (kind === 'ConfigMap') return this.configMaps.find((c) => c.metadata?.name === name)?.data;
    const secret = this.secrets.find((s) => s.metadata?.name === name);
    if (secret) {
      return Object.fromEntries(
        Object.entries(secret.data ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64').toString('utf8')]),
      );
    }
    const cluster = this.clusters.find((c) => `${c.metadata.name}-app` === name);
    if (cluster) {
      const { database, owner } = cluster.spec.bootstrap.initdb;
      const uri = `postgresql://${owner}:generated-password@${cluster.metadata.name}-rw.${NAMESPACE}:5432/${database}`;
      return Object.fromEntries(CNPG_APP_SECRET_KEYS.map((key) => [key, key === 'uri' ? uri : 'generated']));
    }
    return EXTERNAL_SECRETS[name];
  }
}

function workloadOf(kind: Workload['kind'], object: IDeployment | IStatefulSet): Workload {
  const template = object.spec?.template;
  if (!template?.spec) throw new Error(`${kind} ${object.metadata?.name} has no pod template`);
  return {
    kind,
    name: object.metadata?.name ?? '',
    object,
    podLabels: template.metadata?.labels ?? {},
    pod: template.spec,
  };
}

function containersOf(pod: IPodSpec): IContainer[] {
  return [...(pod.initContainers ?? []), ...pod.containers];
}

function matches(selector: LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (!selector) return true;
  const byLabels = Object.entries(selector.matchLabels ?? {}).every(([key, value]) => labels[key] === value);
  const byExpressions = (selector.matchExpressions ?? []).every(({ key, operator, values = [] }) => {
    switch (operator) {
      case 'In':
        return labels[key] !== undefined && values.includes(labels[key]);
      case 'NotIn':
        return labels[key] === undefined || !values.includes(labels[key]);
      case 'Exists':
        return labels[key] !== undefined;
      case 'DoesNotExist':
        return labels[key] === undefined;
      default:
        throw new Error(`unknown selector operator ${operator}`);
    }
  });
  return byLabels && byExpressions;
}

function kustomize(overlay: Overlay): KubeObject[] {
  const dir = path.join(K8S, 'overlays', overlay);
  const result = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', maxBuffer: 32 * 1024 * 1024 });
  if (result.error) {
    throw new Error(
      `these checks render the manifests with \`kubectl kustomize\`, and kubectl could not be run ` +
        `(${result.error.message}): install kubectl 1.27 or later (it works offline): ` +
        'curl -fsSLo /usr/local/bin/kubectl https://dl.k8s.io/release/v1.32.4/bin/linux/amd64/kubectl && ' +
        'chmod +x /usr/local/bin/kubectl',
    );
  }
  if (result.status !== 0) throw new Error(`kubectl kustomize ${dir} failed:\n${result.stderr}`);
  return YAML.parseAllDocuments(result.stdout).flatMap((document) => {
    if (document.errors.length > 0) throw new Error(`unparsable output: ${document.errors.join('\n')}`);
    const value = document.toJS() as KubeObject | null;
    return value ? [value] : [];
  });
}

type ModelClass = new (data: object) => { validate(): void };
/** kubernetes-models modules by apiVersion; every kind of these groups is validated with them. */
const MODELS: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {
  v1: core,
  'apps/v1': apps,
  'policy/v1': policy,
  'autoscaling/v2': autoscaling,
  'networking.k8s.io/v1': networking,
};
const MODEL_GROUPS = /^(v1|apps\/|policy\/|autoscaling\/|networking\.k8s\.io\/)/;

/** Problems with a KEDA ScaledObject: the fields the CRD requires, and that metadata values are strings. */
function scaledObjectProblems(object: KubeObject): string[] {
  const spec = object.spec as Partial<ScaledObject['spec']> | undefined;
  const problems: string[] = [];
  if (typeof spec?.scaleTargetRef?.name !== 'string') problems.push('spec.scaleTargetRef.name is required');
  if (!Array.isArray(spec?.triggers) || spec.triggers.length === 0) problems.push('spec.triggers must not be empty');
  for (const [index, trigger] of (spec?.triggers ?? []).entries()) {
    if (typeof trigger.type !== 'string') problems.push(`triggers[${index}].type is required`);
    for (const [key, value] of Object.entries(trigger.metadata ?? {})) {
      // The CRD types metadata as map[string]string: a YAML number is refused at apply time.
      if (typeof value !== 'string') problems.push(`triggers[${index}].metadata.${key} must be a string`);
    }
  }
  for (const field of ['minReplicaCount', 'maxReplicaCount', 'pollingInterval', 'cooldownPeriod'] as const) {
    const value = (spec as Record<string, unknown> | undefined)?.[field];
    if (value !== undefined && !(Number.isInteger(value) && (value as number) >= 0)) {
      problems.push(`spec.${field} must be a non-negative integer`);
    }
  }
  return problems;
}

/** Problems with a CloudNativePG Cluster: required fields, bootstrap, and string parameters. */
function postgresClusterProblems(object: KubeObject): string[] {
  const spec = object.spec as Partial<PostgresCluster['spec']> | undefined;
  const problems: string[] = [];
  if (!(Number.isInteger(spec?.instances) && (spec?.instances ?? 0) >= 1)) {
    problems.push('spec.instances must be an integer ≥ 1');
  }
  if (typeof spec?.storage?.size !== 'string' || !/^\d+(Mi|Gi|Ti)$/.test(spec.storage.size)) {
    problems.push('spec.storage.size must be a quantity such as 20Gi');
  }
  if (typeof spec?.bootstrap?.initdb?.database !== 'string')
    problems.push('spec.bootstrap.initdb.database is required');
  if (typeof spec?.bootstrap?.initdb?.owner !== 'string') problems.push('spec.bootstrap.initdb.owner is required');
  if (spec?.imageName !== undefined && !/^[\w./-]+:[\w.-]+$/.test(spec.imageName)) {
    problems.push('spec.imageName must name a tagged image');
  }
  for (const [key, value] of Object.entries(spec?.postgresql?.parameters ?? {})) {
    if (typeof value !== 'string') problems.push(`spec.postgresql.parameters.${key} must be a string`);
  }
  return problems;
}

/** Byte sizes in the two notations these files use: Kubernetes quantities and nats-server's. */
function bytes(size: string): number {
  const match = /^(\d+)(Ki|Mi|Gi|Ti|KiB|MiB|GiB|TiB)$/.exec(size);
  if (!match) throw new Error(`unsupported size ${size}`);
  const power = { K: 1, M: 2, G: 3, T: 4 }[(match[2] as string)[0] as 'K' | 'M' | 'G' | 'T'];
  return Number(match[1]) * 1024 ** power;
}

function seconds(duration: string): number {
  const match = /^(\d+)(s|m)$/.exec(duration);
  if (!match) throw new Error(`unsupported duration ${duration}`);
  return Number(match[1]) * (match[2] === 'm' ? 60 : 1);
}

/** A container port by name or number. */
function containerPort(container: IContainer, port: number | string | undefined): number | undefined {
  return (container.ports ?? []).find((p) => (typeof port === 'string' ? p.name === port : p.containerPort === port))
    ?.containerPort;
}

function probesOf(container: IContainer): [string, IProbe][] {
  const probes: [string, IProbe | undefined][] = [
    ['startupProbe', container.startupProbe],
    ['livenessProbe', container.livenessProbe],
    ['readinessProbe', container.readinessProbe],
  ];
  return probes.filter((entry): entry is [string, IProbe] => entry[1] !== undefined);
}

/** The environment a container starts with, as the kubelet would assemble it. */
function environment(render: Render, container: IContainer, podName: string): Record<string, string> {
  const env: Record<string, string> = {};
  const need = (kind: 'ConfigMap' | 'Secret', name: string, optional = false) => {
    const values = render.values(kind, name);
    if (!values && !optional) throw new Error(`${container.name}: ${kind} ${name} is neither rendered nor external`);
    return values ?? {};
  };
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef) Object.assign(env, need('ConfigMap', source.configMapRef.name ?? ''));
    if (source.secretRef) Object.assign(env, need('Secret', source.secretRef.name ?? ''));
  }
  for (const variable of container.env ?? []) {
    const from = variable.valueFrom;
    let value: string | undefined = variable.value;
    if (from?.fieldRef) {
      if (from.fieldRef.fieldPath !== 'metadata.name')
        throw new Error(`unexpected fieldRef ${from.fieldRef.fieldPath}`);
      value = podName;
    } else if (from?.secretKeyRef) {
      const ref = from.secretKeyRef;
      value = need('Secret', ref.name ?? '', ref.optional)[ref.key];
      if (value === undefined && !ref.optional)
        throw new Error(`${variable.name}: secret ${ref.name} has no key ${ref.key}`);
    } else if (from?.configMapKeyRef) {
      const ref = from.configMapKeyRef;
      value = need('ConfigMap', ref.name ?? '', ref.optional)[ref.key];
      if (value === undefined && !ref.optional)
        throw new Error(`${variable.name}: ConfigMap ${ref.name} has no key ${ref.key}`);
    }
    if (value !== undefined) env[variable.name] = value;
  }
  return env;
}

function schemaKeys(schema: z.ZodType): string[] {
  if (schema instanceof z.ZodPipe) return schemaKeys(schema.in as z.ZodType);
  if (schema instanceof z.ZodObject) return Object.keys(schema.shape);
  throw new Error('a service schema is expected to be an object schema, possibly with a transform');
}

/** The container that runs a Syncline service, with the schema of the configuration it parses. */
function serviceContainer(workload: Workload): { container: IContainer; schema: z.ZodType } | undefined {
  for (const container of workload.pod.containers) {
    const script = container.command?.[1] ?? '';
    const schema = SERVICE_SCHEMAS[script];
    if (schema) return { container, schema };
  }
  return undefined;
}

/** The configuration a service would boot with in this render, parsed by its own schema. */
function serviceConfig(render: Render, workload: Workload): Record<string, unknown> {
  const found = serviceContainer(workload);
  if (!found) throw new Error(`${workload.name} runs no Syncline service`);
  const env = environment(render, found.container, `${workload.name}-7c9d8b6f5d-x2x7q`);
  return found.schema.parse(env) as Record<string, unknown>;
}

/** NetworkPolicy semantics: would a connection from one pod to another, on a port, be allowed? */
function allowed(render: Render, from: Endpoint, to: Endpoint, port: number, protocol = 'TCP'): boolean {
  const portMatches = (ports: INetworkPolicyPort[] | undefined) =>
    !ports ||
    ports.length === 0 ||
    ports.some(
      (p) =>
        (p.protocol ?? 'TCP') === protocol &&
        (p.port === undefined ||
          p.port === port ||
          (p.endPort !== undefined && port >= Number(p.port) && port <= p.endPort)),
    );
  const peerMatches = (peers: INetworkPolicyPeer[] | undefined, other: Endpoint) =>
    !peers ||
    peers.length === 0 ||
    peers.some((peer) => {
      // ipBlock peers are meant for addresses outside the cluster, not for pods.
      if (peer.ipBlock) return false;
      const inNamespace = peer.namespaceSelector
        ? matches(peer.namespaceSelector, { 'kubernetes.io/metadata.name': other.namespace })
        : other.namespace === NAMESPACE;
      return inNamespace && matches(peer.podSelector, other.labels);
    });
  const side = (subject: Endpoint, type: 'Ingress' | 'Egress', other: Endpoint) => {
    if (subject.namespace !== NAMESPACE) return true;
    const applying = render.policies.filter((p) => {
      const types = p.spec?.policyTypes ?? ['Ingress', ...(p.spec?.egress ? ['Egress'] : [])];
      return matches(p.spec?.podSelector, subject.labels) && types.includes(type as 'Ingress' | 'Egress');
    });
    if (applying.length === 0) return true;
    return applying.some((p) =>
      type === 'Ingress'
        ? (p.spec?.ingress ?? []).some((rule) => peerMatches(rule.from, other) && portMatches(rule.ports))
        : (p.spec?.egress ?? []).some((rule) => peerMatches(rule.to, other) && portMatches(rule.ports)),
    );
  };
  return side(from, 'Egress', to) && side(to, 'Ingress', from);
}

function pod(render: Render, name: string): Endpoint {
  return { namespace: NAMESPACE, labels: render.workload(name).podLabels };
}

function postgresPod(render: Render): Endpoint {
  const cluster = render.clusters[0];
  if (!cluster) throw new Error('no PostgreSQL Cluster');
  return { namespace: NAMESPACE, labels: { 'cnpg.io/cluster': cluster.metadata.name } };
}

/** A file the container reads from a mounted ConfigMap. */
function mountedFile(render: Render, workload: Workload, container: IContainer, file: string): string {
  const mount = (container.volumeMounts ?? []).find((m) => path.posix.dirname(file) === m.mountPath);
  const volume = workload.pod.volumes?.find((v) => v.name === mount?.name);
  const name = volume?.configMap?.name;
  const content = name ? render.values('ConfigMap', name)?.[path.posix.basename(file)] : undefined;
  if (content === undefined) throw new Error(`${workload.name}: ${file} is not mounted from a rendered ConfigMap`);
  return content;
}

/** A top-level setting of a nats-server configuration file. */
function natsSetting(conf: string, key: string): string | undefined {
  return new RegExp(`^${key}:\\s*(\\S+)`, 'm').exec(conf)?.[1];
}

describe.each(OVERLAYS)('deploy/k8s overlay %s', (overlay) => {
  let render: Render;

  beforeAll(() => {
    render = new Render(kustomize(overlay));
  });

  it('renders objects of known kinds only, each valid against the Kubernetes schema or the CRD’s required fields', () => {
    const problems: string[] = [];
    for (const object of render.objects) {
      const id = `${object.apiVersion} ${object.kind} ${object.metadata?.name}`;
      const Model = MODELS[object.apiVersion]?.[object.kind];
      if (typeof Model === 'function') {
        try {
          new (Model as ModelClass)(object).validate();
        } catch (error) {
          problems.push(`${id}: ${(error as Error).message}`);
        }
      } else if (MODEL_GROUPS.test(object.apiVersion)) {
        problems.push(`${id}: no kubernetes-models schema for this kind`);
      } else if (object.apiVersion === 'keda.sh/v1alpha1' && object.kind === 'ScaledObject') {
        problems.push(...scaledObjectProblems(object).map((p) => `${id}: ${p}`));
      } else if (object.apiVersion === 'postgresql.cnpg.io/v1' && object.kind === 'Cluster') {
        problems.push(...postgresClusterProblems(object).map((p) => `${id}: ${p}`));
      } else {
        problems.push(`${id}: a kind these checks do not know`);
      }
    }
    expect(problems).toEqual([]);
    expect(render.objects.map((o) => o.kind)).toEqual(
      expect.arrayContaining([
        'Namespace',
        'Deployment',
        'StatefulSet',
        'Service',
        'ConfigMap',
        'PodDisruptionBudget',
        'HorizontalPodAutoscaler',
        'NetworkPolicy',
        'Ingress',
        'ScaledObject',
        'Cluster',
      ]),
    );
  });

  it('puts everything in the syncline namespace, with the recommended labels', () => {
    const namespaces = render.objects.filter((o) => o.kind === 'Namespace');
    expect(namespaces.map((n) => n.metadata.name)).toEqual([NAMESPACE]);
    for (const object of render.objects.filter((o) => o.kind !== 'Namespace')) {
      expect({ object: `${object.kind}/${object.metadata.name}`, namespace: object.metadata.namespace }).toEqual({
        object: `${object.kind}/${object.metadata.name}`,
        namespace: NAMESPACE,
      });
    }
    for (const object of render.objects) {
      expect(object.metadata.labels).toMatchObject({
        'app.kubernetes.io/part-of': 'syncline',
        'app.kubernetes.io/managed-by': 'kustomize',
      });
    }
    for (const workload of render.workloads) {
      for (const labels of [workload.object.metadata?.labels ?? {}, workload.podLabels]) {
        expect(Object.keys(labels)).toEqual(
          expect.arrayContaining([
            'app.kubernetes.io/name',
            'app.kubernetes.io/instance',
            'app.kubernetes.io/component',
          ]),
        );
      }
    }
  });

  it('commits no secret: only the dev overlay generates one, with the development value', () => {
    if (overlay === 'production') {
      expect(render.secrets).toEqual([]);
    } else {
      expect(render.secrets.map((s) => s.metadata?.name)).toEqual([expect.stringMatching(/^syncline-secrets-/)]);
      expect(render.values('Secret', render.secrets[0]?.metadata?.name ?? '')?.['jwt-secret']).toMatch(/development/);
    }
  });

  it('resolves every ConfigMap and Secret reference, with its keys', () => {
    const problems: string[] = [];
    const check = (where: string, kind: 'ConfigMap' | 'Secret', name = '', key?: string, optional = false) => {
      const values = render.values(kind, name);
      if (!values) {
        if (!optional) problems.push(`${where}: ${kind} ${name} is neither rendered nor known to be external`);
      } else if (key !== undefined && !(key in values) && !optional) {
        problems.push(`${where}: ${kind} ${name} has no key ${key}`);
      }
    };
    for (const workload of render.workloads) {
      for (const container of containersOf(workload.pod)) {
        const where = `${workload.name}/${container.name}`;
        for (const source of container.envFrom ?? []) {
          if (source.configMapRef)
            check(where, 'ConfigMap', source.configMapRef.name, undefined, source.configMapRef.optional);
          if (source.secretRef) check(where, 'Secret', source.secretRef.name, undefined, source.secretRef.optional);
        }
        for (const variable of container.env ?? []) {
          const { secretKeyRef, configMapKeyRef } = variable.valueFrom ?? {};
          if (secretKeyRef) check(where, 'Secret', secretKeyRef.name, secretKeyRef.key, secretKeyRef.optional);
          if (configMapKeyRef)
            check(where, 'ConfigMap', configMapKeyRef.name, configMapKeyRef.key, configMapKeyRef.optional);
        }
      }
      for (const volume of workload.pod.volumes ?? []) {
        const where = `${workload.name} volume ${volume.name}`;
        if (volume.configMap) {
          check(where, 'ConfigMap', volume.configMap.name, undefined, volume.configMap.optional);
          for (const item of volume.configMap.items ?? []) check(where, 'ConfigMap', volume.configMap.name, item.key);
        }
        if (volume.secret) check(where, 'Secret', volume.secret.secretName, undefined, volume.secret.optional);
      }
    }
    for (const ingress of render.ingresses) {
      for (const tls of ingress.spec?.tls ?? []) check(`Ingress ${ingress.metadata?.name}`, 'Secret', tls.secretName);
    }
    expect(problems).toEqual([]);
  });

  it('selects pods with every Service, targeting ports the containers declare', () => {
    for (const service of render.services) {
      const selected = render.selected(service.spec?.selector);
      expect({ service: service.metadata?.name, selects: selected.length > 0 }).toEqual({
        service: service.metadata?.name,
        selects: true,
      });
      for (const port of service.spec?.ports ?? []) {
        for (const workload of selected) {
          const resolved = workload.pod.containers.some(
            (c) => containerPort(c, port.targetPort ?? port.port) !== undefined,
          );
          expect({ service: service.metadata?.name, port: port.name, workload: workload.name, resolved }).toEqual({
            service: service.metadata?.name,
            port: port.name,
            workload: workload.name,
            resolved: true,
          });
        }
      }
    }
    for (const workload of render.workloads.filter((w) => w.kind === 'StatefulSet')) {
      const governing = render.service((workload.object as IStatefulSet).spec?.serviceName ?? '');
      expect(governing?.spec?.clusterIP).toBe('None');
      expect(render.selected(governing?.spec?.selector)).toContain(workload);
    }
  });

  it('points disruption budgets and autoscalers at existing workloads, and leaves autoscaled replica counts to them', () => {
    for (const pdb of render.pdbs) {
      expect(render.selected(pdb.spec?.selector as LabelSelector)).toHaveLength(1);
    }
    const autoscaled = [
      ...render.hpas.map((h) => h.spec?.scaleTargetRef.name ?? ''),
      ...render.scaledObjects.map((s) => s.spec.scaleTargetRef.name),
    ];
    for (const name of autoscaled) {
      const target = render.workload(name);
      expect(target.kind).toBe('Deployment');
      // A replica count in the manifest would reset the autoscaler's on every apply.
      expect((target.object as IDeployment).spec?.replicas).toBeUndefined();
    }
    for (const hpa of render.hpas) {
      expect(hpa.spec?.minReplicas ?? 1).toBeLessThanOrEqual(hpa.spec?.maxReplicas ?? 0);
    }
    for (const scaled of render.scaledObjects) {
      expect(scaled.spec.minReplicaCount ?? 0).toBeLessThanOrEqual(scaled.spec.maxReplicaCount ?? 100);
      if (scaled.spec.fallback) {
        expect(scaled.spec.fallback.replicas).toBeLessThanOrEqual(scaled.spec.maxReplicaCount ?? 100);
      }
    }
    // Every workload has a disruption budget.
    for (const workload of render.workloads) {
      expect(render.pdbs.some((p) => matches(p.spec?.selector as LabelSelector, workload.podLabels))).toBe(true);
    }
  });

  it('gives every container probes on declared ports, resources, and a restricted security context', () => {
    for (const workload of render.workloads) {
      const pod = workload.pod;
      expect({ workload: workload.name, token: pod.automountServiceAccountToken }).toEqual({
        workload: workload.name,
        token: false,
      });
      expect(pod.hostNetwork ?? false).toBe(false);
      expect(pod.hostPID ?? false).toBe(false);
      expect(pod.hostIPC ?? false).toBe(false);
      expect((pod.volumes ?? []).filter((v) => v.hostPath)).toEqual([]);
      for (const container of containersOf(pod)) {
        const where = `${workload.name}/${container.name}`;
        const context = container.securityContext ?? {};
        const facts = {
          where,
          runAsNonRoot: context.runAsNonRoot ?? pod.securityContext?.runAsNonRoot,
          rootUser: (context.runAsUser ?? pod.securityContext?.runAsUser) === 0,
          seccomp: (context.seccompProfile ?? pod.securityContext?.seccompProfile)?.type,
          allowPrivilegeEscalation: context.allowPrivilegeEscalation,
          readOnlyRootFilesystem: context.readOnlyRootFilesystem,
          dropsAll: context.capabilities?.drop?.includes('ALL'),
          adds: context.capabilities?.add ?? [],
          requests: Object.keys(container.resources?.requests ?? {}).sort(),
          limits: Object.keys(container.resources?.limits ?? {}).sort(),
          readiness: container.readinessProbe !== undefined,
          liveness: container.livenessProbe !== undefined,
        };
        expect(facts).toEqual({
          where,
          runAsNonRoot: true,
          rootUser: false,
          seccomp: 'RuntimeDefault',
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          dropsAll: true,
          adds: [],
          requests: ['cpu', 'memory'],
          limits: ['cpu', 'memory'],
          readiness: true,
          liveness: true,
        });
        for (const [kind, probe] of probesOf(container)) {
          const port = probe.httpGet?.port ?? probe.tcpSocket?.port ?? probe.grpc?.port;
          expect({ where, kind, port, declared: containerPort(container, port) !== undefined }).toEqual({
            where,
            kind,
            port,
            declared: true,
          });
        }
      }
    }
  });

  it('runs the Syncline image with a tag from the overlay, and every other image pinned', () => {
    for (const workload of render.workloads) {
      for (const container of containersOf(workload.pod)) {
        const image = container.image ?? '';
        const [name, tag] = image.split(/:(?=[^:/]+$)/);
        expect({ image, tagged: tag !== undefined && tag !== 'latest' }).toEqual({ image, tagged: true });
        if (serviceContainer(workload)?.container === container) expect(name).toBe(APP_IMAGE);
      }
    }
  });

  it('sets only variables the services read, with values their configuration schemas accept', () => {
    const services = render.workloads.filter((w) => serviceContainer(w));
    expect(services.map((w) => w.name).sort()).toEqual(['conflict-service', 'gateway', 'sync-worker']);
    for (const workload of services) {
      const { container, schema } = serviceContainer(workload) as { container: IContainer; schema: z.ZodType };
      const env = environment(render, container, `${workload.name}-7c9d8b6f5d-x2x7q`);
      const known = new Set(schemaKeys(schema));
      expect({
        workload: workload.name,
        unknown: Object.keys(env).filter((k) => !known.has(k) && !RUNTIME_ENV.has(k)),
      }).toEqual({
        workload: workload.name,
        unknown: [],
      });
      const parsed = schema.safeParse(env);
      expect({ workload: workload.name, issues: parsed.error?.issues ?? [] }).toEqual({
        workload: workload.name,
        issues: [],
      });
      expect(env['NODE_ENV']).toBe('production');
      // The pod name, so logs, traces and outcome subjects name the replica.
      expect(container.env?.find((e) => e.name === 'INSTANCE_ID')?.valueFrom?.fieldRef?.fieldPath).toBe(
        'metadata.name',
      );
    }
  });

  it('listens where the probes, Services and policies expect: GATEWAY_PORT and MONITORING_PORT', () => {
    const gateway = serviceConfig(render, render.workload('gateway'));
    const gatewayContainer = render.workload('gateway').pod.containers[0] as IContainer;
    expect(containerPort(gatewayContainer, 'http')).toBe(gateway['GATEWAY_PORT']);
    for (const [, probe] of probesOf(gatewayContainer)) {
      expect(containerPort(gatewayContainer, probe.httpGet?.port)).toBe(gateway['GATEWAY_PORT']);
    }
    for (const name of ['sync-worker', 'conflict-service']) {
      const config = serviceConfig(render, render.workload(name));
      const container = render.workload(name).pod.containers[0] as IContainer;
      for (const [, probe] of probesOf(container)) {
        expect(containerPort(container, probe.httpGet?.port)).toBe(config['MONITORING_PORT']);
      }
    }
  });

  it('connects the services to NATS and the collector through Services that exist', () => {
    for (const name of ['gateway', 'sync-worker', 'conflict-service']) {
      const config = serviceConfig(render, render.workload(name));
      const targets = [...(config['NATS_URL'] as string[]), config['OTEL_EXPORTER_OTLP_ENDPOINT'] as string];
      for (const target of targets) {
        const url = new URL(target);
        const [serviceName, namespace = NAMESPACE] = url.hostname.split('.');
        expect({ target, namespace }).toEqual({ target, namespace: NAMESPACE });
        const service = render.service(serviceName ?? '');
        expect({ target, port: service?.spec?.ports?.some((p) => p.port === Number(url.port)) }).toEqual({
          target,
          port: true,
        });
      }
    }
  });

  it('sizes termination grace periods for the drain on SIGTERM', () => {
    const gateway = render.workload('gateway').pod;
    const preStop = gateway.containers[0]?.lifecycle?.preStop;
    const sleep = preStop?.sleep?.seconds ?? 0;
    // Long enough for kube-proxy and ingress-nginx to drop the endpoint before SIGTERM…
    expect(sleep).toBeGreaterThanOrEqual(5);
    // …and the clients' close (4001) and the NATS drain still fit after it.
    expect(gateway.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(sleep + 15);

    const worker = serviceConfig(render, render.workload('sync-worker'));
    const ackWaitSeconds = (worker['WORKER_ACK_WAIT_MS'] as number) / 1000;
    const workerGrace = render.workload('sync-worker').pod.terminationGracePeriodSeconds ?? 30;
    expect(workerGrace).toBeGreaterThanOrEqual(Math.max(45, ackWaitSeconds + 10));
    expect(render.workload('conflict-service').pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(30);

    // NATS: lame duck mode (grace period + duration) has to end before the kubelet kills it.
    const nats = render.workload('nats');
    const conf = mountedFile(render, nats, nats.pod.containers[0] as IContainer, natsConfigPath(nats));
    const lameDuck =
      seconds(natsSetting(conf, 'lame_duck_grace_period') ?? '10s') +
      seconds(natsSetting(conf, 'lame_duck_duration') ?? '2m');
    expect(nats.pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(lameDuck + 10);
    expect(nats.pod.containers[0]?.lifecycle?.preStop?.exec?.command?.join(' ')).toContain(
      `ldm=${natsSetting(conf, 'pid_file')}`,
    );
  });

  it('configures NATS as a JetStream cluster of its StatefulSet’s size, with room for both streams', () => {
    const nats = render.workload('nats');
    const statefulSet = nats.object as IStatefulSet;
    const container = nats.pod.containers[0] as IContainer;
    const replicas = statefulSet.spec?.replicas ?? 1;
    const conf = mountedFile(render, nats, container, natsConfigPath(nats));

    expect(natsSetting(conf, 'server_name')).toBe('$POD_NAME');
    expect(container.env?.find((e) => e.name === 'POD_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
    expect(containerPort(container, 'client')).toBe(Number(natsSetting(conf, 'port')));
    expect(containerPort(container, 'monitor')).toBe(Number(natsSetting(conf, 'http_port')));

    const routes = [...conf.matchAll(/nats:\/\/([a-z0-9-]+)\.([a-z0-9-]+):(\d+)/g)];
    if (replicas === 1) {
      expect(conf).not.toMatch(/^cluster\s*\{/m);
    } else {
      expect(conf).toMatch(/^cluster\s*\{/m);
      expect(routes.map((r) => r[1]).sort()).toEqual(
        Array.from({ length: replicas }, (_, i) => `${statefulSet.metadata?.name}-${i}`),
      );
      for (const route of routes) {
        expect(route[2]).toBe(statefulSet.spec?.serviceName);
        expect(containerPort(container, Number(route[3]))).toBeDefined();
      }
    }

    // Both streams reserve their max_bytes on every server holding a replica.
    const maxFileStore = bytes(/max_file_store:\s*(\S+)/.exec(conf)?.[1] ?? '0');
    const streams = serviceConfig(render, render.workload('sync-worker'));
    const reserved = Number(streams['MUTATIONS_STREAM_MAX_BYTES']) + Number(streams['CHANGES_STREAM_MAX_BYTES']);
    expect(maxFileStore).toBeGreaterThanOrEqual(reserved);
    const claim = statefulSet.spec?.volumeClaimTemplates?.find((t) =>
      container.volumeMounts?.some((m) => m.name === t.metadata?.name && m.mountPath === '/data'),
    );
    expect(bytes(String(claim?.spec?.resources?.requests?.['storage']))).toBeGreaterThan(maxFileStore);

    // A stream cannot have more replicas than there are servers.
    const common = serviceConfig(render, render.workload('gateway'));
    expect(common['STREAM_REPLICAS']).toBeLessThanOrEqual(replicas);
  });

  it('scales the workers with KEDA on the lag of their JetStream consumer, read from the NATS servers', () => {
    const [scaled] = render.scaledObjects;
    expect(render.scaledObjects).toHaveLength(1);
    expect(scaled?.spec.scaleTargetRef.name).toBe('sync-worker');
    const trigger = scaled?.spec.triggers.find((t) => t.type === 'nats-jetstream');
    const worker = serviceConfig(render, render.workload('sync-worker'));
    expect(trigger?.metadata).toMatchObject({
      account: '$G',
      stream: worker['MUTATIONS_STREAM'],
      consumer: WORKER_CONSUMER.durableName,
    });
    expect(worker['MUTATIONS_STREAM']).toBe(DEFAULT_STREAM_NAMES.mutations);
    expect(Number(trigger?.metadata['lagThreshold'])).toBeGreaterThan(0);

    // KEDA queries `<server name>.<endpoint host>` in a cluster: the host must be the headless
    // Service that gives each NATS pod its DNS name, and the port the monitoring port.
    const endpoint = String(trigger?.metadata['natsServerMonitoringEndpoint']);
    const match = /^([a-z0-9-]+)\.([a-z0-9-]+)\.svc(\.cluster\.local)?:(\d+)$/.exec(endpoint);
    expect(match).not.toBeNull();
    const [, serviceName, namespace, , port] = match as RegExpExecArray;
    expect(namespace).toBe(NAMESPACE);
    const nats = render.workload('nats');
    expect((nats.object as IStatefulSet).spec?.serviceName).toBe(serviceName);
    const servicePort = render.service(serviceName ?? '')?.spec?.ports?.find((p) => p.port === Number(port));
    const container = nats.pod.containers[0] as IContainer;
    const conf = mountedFile(render, nats, container, natsConfigPath(nats));
    expect(containerPort(container, servicePort?.targetPort)).toBe(Number(natsSetting(conf, 'http_port')));
  });

  it('keeps PostgreSQL connections within max_connections at the largest scale', () => {
    const [cluster] = render.clusters;
    expect(render.clusters).toHaveLength(1);
    const maxConnections = Number(cluster?.spec.postgresql?.parameters?.['max_connections'] ?? 100);
    const surge = (name: string) =>
      Number((render.workload(name).object as IDeployment).spec?.strategy?.rollingUpdate?.maxSurge ?? 0);
    const workerPool = serviceConfig(render, render.workload('sync-worker'))['DATABASE_POOL_SIZE'] as number;
    const conflictPool = serviceConfig(render, render.workload('conflict-service'))['DATABASE_POOL_SIZE'] as number;
    const workers = (render.scaledObjects[0]?.spec.maxReplicaCount ?? 100) + surge('sync-worker');
    const conflicts =
      ((render.workload('conflict-service').object as IDeployment).spec?.replicas ?? 1) + surge('conflict-service');
    // Room for superuser connections and the operator's own.
    expect(workers * workerPool + conflicts * conflictPool).toBeLessThanOrEqual(maxConnections - 10);
    // The services use the application secret of this Cluster.
    const secretName = render.workload('sync-worker').pod.containers[0]?.env?.find((e) => e.name === 'DATABASE_URL')
      ?.valueFrom?.secretKeyRef?.name;
    expect(secretName).toBe(`${cluster?.metadata.name}-app`);
  });

  it('exposes the client routes through ingress-nginx, with WebSocket timeouts and unbuffered SSE', () => {
    const paths = render.ingresses.flatMap((ingress) =>
      (ingress.spec?.rules ?? []).flatMap((rule) =>
        (rule.http?.paths ?? []).map((p) => ({ ingress, path: p.path ?? '', type: p.pathType, backend: p.backend })),
      ),
    );
    for (const { ingress, backend } of paths) {
      expect(ingress.spec?.ingressClassName).toBe('nginx');
      const service = render.service(backend.service?.name ?? '');
      const port = backend.service?.port;
      expect(service?.spec?.ports?.some((p) => (port?.name ? p.name === port.name : p.port === port?.number))).toBe(
        true,
      );
    }
    const route = (wanted: string) => paths.find((p) => p.path === wanted);
    for (const wanted of ['/ws', '/api', '/api/v1/sync/events']) {
      const annotations = route(wanted)?.ingress.metadata?.annotations ?? {};
      expect(Number(annotations['nginx.ingress.kubernetes.io/proxy-read-timeout'])).toBeGreaterThanOrEqual(3600);
      expect(Number(annotations['nginx.ingress.kubernetes.io/proxy-send-timeout'])).toBeGreaterThanOrEqual(3600);
    }
    expect(
      route('/api/v1/sync/events')?.ingress.metadata?.annotations?.['nginx.ingress.kubernetes.io/proxy-buffering'],
    ).toBe('off');
    // Metrics and readiness stay inside the cluster.
    for (const internal of ['/metrics', '/ready']) {
      expect(paths.filter((p) => p.type === 'Prefix' && internal.startsWith(p.path))).toEqual([]);
    }
  });

  it('allows the flows the platform needs through the network policies, and denies the others tried', () => {
    expect(
      render.policies.some(
        (p) => Object.keys(p.spec?.podSelector ?? {}).length === 0 && p.spec?.policyTypes?.length === 2,
      ),
    ).toBe(true);
    const gateway = pod(render, 'gateway');
    const worker = pod(render, 'sync-worker');
    const conflict = pod(render, 'conflict-service');
    const nats = pod(render, 'nats');
    const collector = pod(render, 'otel-collector');
    const postgres = postgresPod(render);
    const flows: [string, Endpoint, Endpoint, number, boolean, string?][] = [
      ['clients via ingress-nginx → gateway', OUTSIDE.ingressNginx, gateway, 3000, true],
      ['gateway → NATS', gateway, nats, 4222, true],
      ['sync-worker → NATS', worker, nats, 4222, true],
      ['conflict-service → NATS', conflict, nats, 4222, true],
      ['sync-worker → PostgreSQL', worker, postgres, 5432, true],
      ['conflict-service → PostgreSQL', conflict, postgres, 5432, true],
      ['NATS routes', nats, nats, 6222, true],
      ['Prometheus → gateway metrics', OUTSIDE.prometheus, gateway, 3000, true],
      ['Prometheus → sync-worker metrics', OUTSIDE.prometheus, worker, 9090, true],
      ['Prometheus → conflict-service metrics', OUTSIDE.prometheus, conflict, 9090, true],
      ['KEDA → NATS monitoring', OUTSIDE.keda, nats, 8222, true],
      ['CloudNativePG operator → instance manager', OUTSIDE.cnpgOperator, postgres, 8000, true],
      ['PostgreSQL replication', postgres, postgres, 5432, true],
      ['gateway → collector', gateway, collector, 4318, true],
      ['sync-worker → collector', worker, collector, 4318, true],
      ['conflict-service → collector', conflict, collector, 4318, true],
      ['gateway → PostgreSQL', gateway, postgres, 5432, false],
      ['gateway → sync-worker', gateway, worker, 9090, false],
      ['ingress-nginx → NATS', OUTSIDE.ingressNginx, nats, 4222, false],
      ['ingress-nginx → sync-worker', OUTSIDE.ingressNginx, worker, 9090, false],
      ['another namespace → gateway', OUTSIDE.elsewhere, gateway, 3000, false],
      ['another namespace → NATS', OUTSIDE.elsewhere, nats, 4222, false],
      ['another namespace → PostgreSQL', OUTSIDE.elsewhere, postgres, 5432, false],
      ['Prometheus → NATS clients port', OUTSIDE.prometheus, nats, 4222, false],
      ['KEDA → NATS clients port', OUTSIDE.keda, nats, 4222, false],
      ['NATS → PostgreSQL', nats, postgres, 5432, false],
      ['sync-worker → another namespace', worker, OUTSIDE.elsewhere, 443, false],
      ['gateway → another namespace', gateway, OUTSIDE.elsewhere, 443, false],
    ];
    const outcomes = flows.map(([name, from, to, port, expected]) => ({
      name,
      allowed: allowed(render, from, to, port),
      expected,
    }));
    expect(outcomes.filter((o) => o.allowed !== o.expected)).toEqual([]);
    for (const subject of [gateway, worker, conflict, nats, collector, postgres]) {
      expect(allowed(render, subject, OUTSIDE.kubeDns, 53, 'UDP')).toBe(true);
    }
  });

  it('names, in every policy rule, pods and ports that exist', () => {
    const problems: string[] = [];
    for (const policy of render.policies) {
      const name = policy.metadata?.name;
      const subjects = render.podsOf(policy.spec?.podSelector as LabelSelector);
      if (subjects.length === 0) problems.push(`${name}: selects no pod`);
      for (const rule of policy.spec?.ingress ?? []) {
        for (const port of rule.ports ?? []) {
          if (typeof port.port !== 'number') problems.push(`${name}: use numeric ports`);
          else if (!subjects.every((s) => s.ports.includes(port.port as number))) {
            problems.push(`${name}: ingress port ${port.port} is not served by every selected pod`);
          }
        }
        for (const peer of rule.from ?? []) {
          if (
            !peer.namespaceSelector &&
            !peer.ipBlock &&
            render.podsOf(peer.podSelector as LabelSelector).length === 0
          ) {
            problems.push(`${name}: an ingress peer selects no pod`);
          }
        }
      }
      for (const rule of policy.spec?.egress ?? []) {
        for (const peer of rule.to ?? []) {
          if (peer.namespaceSelector || peer.ipBlock) continue;
          const peers = render.podsOf(peer.podSelector as LabelSelector);
          if (peers.length === 0) problems.push(`${name}: an egress peer selects no pod`);
          for (const port of rule.ports ?? []) {
            if (!peers.every((p) => p.ports.includes(port.port as number))) {
              problems.push(`${name}: egress port ${port.port} is not served by the peer`);
            }
          }
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it(`has the ${overlay} sizes`, () => {
    const gatewayHpa = render.hpas.find((h) => h.spec?.scaleTargetRef.name === 'gateway');
    const workers = render.scaledObjects[0]?.spec;
    const conflictReplicas = (render.workload('conflict-service').object as IDeployment).spec?.replicas;
    const natsReplicas = (render.workload('nats').object as IStatefulSet).spec?.replicas;
    const config = serviceConfig(render, render.workload('gateway'));
    const sizes = {
      gateways: gatewayHpa?.spec?.minReplicas,
      workers: workers?.minReplicaCount,
      conflictServices: conflictReplicas,
      natsServers: natsReplicas,
      streamReplicas: config['STREAM_REPLICAS'],
      postgresInstances: render.clusters[0]?.spec.instances,
    };
    if (overlay === 'production') {
      expect(sizes).toEqual({
        gateways: 3,
        workers: 2,
        conflictServices: 2,
        natsServers: 3,
        streamReplicas: 3,
        postgresInstances: 3,
      });
      expect(gatewayHpa?.spec?.maxReplicas).toBeGreaterThan(6);
    } else {
      expect(sizes).toEqual({
        gateways: 1,
        workers: 1,
        conflictServices: 1,
        natsServers: 1,
        streamReplicas: 1,
        postgresInstances: 1,
      });
    }
  });
});

function natsConfigPath(nats: Workload): string {
  const args = nats.pod.containers[0]?.args ?? [];
  const index = args.indexOf('--config');
  const file = index >= 0 ? args[index + 1] : undefined;
  if (!file) throw new Error('nats-server is started without --config');
  return file;
}

describe('deploy/k8s YAML', () => {
  /** Every YAML file under deploy/k8s, relative to it. */
  const files = readdirSync(K8S, { recursive: true, encoding: 'utf8' })
    .filter((file) => /\.ya?ml$/.test(file))
    .sort();

  it('is strict YAML: no syntax warning, no duplicate key, lines of at most 140 characters', () => {
    expect(files.length).toBeGreaterThan(10);
    const problems = files.flatMap((file) => {
      const text = readFileSync(path.join(K8S, file), 'utf8');
      const documents = YAML.parseAllDocuments(text, { strict: true, uniqueKeys: true, prettyErrors: true });
      const parsed = (Array.isArray(documents) ? documents : [documents]).flatMap((document) =>
        [...document.errors, ...document.warnings].map((issue) => `${file}: ${issue.message}`),
      );
      const long = text
        .split('\n')
        .flatMap((line, index) => (line.length > 140 ? [`${file}:${index + 1}: line longer than 140`] : []));
      return [...parsed, ...long];
    });
    expect(problems).toEqual([]);
  });

  it('is formatted as prettier formats it', async () => {
    const unformatted: string[] = [];
    for (const file of files) {
      const filepath = path.join(K8S, file);
      const options = (await prettier.resolveConfig(filepath)) ?? {};
      if (!(await prettier.check(readFileSync(filepath, 'utf8'), { ...options, filepath }))) unformatted.push(file);
    }
    expect(unformatted).toEqual([]);
  });
});
