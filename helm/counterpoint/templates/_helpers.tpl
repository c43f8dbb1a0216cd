{{/* Names ------------------------------------------------------------------------------ */}}

{{- define "counterpoint.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified release name; kept short because KubeRay appends suffixes to it. */}}
{{- define "counterpoint.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "counterpoint.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels: call with (dict "ctx" $ "component" "mlflow"). */}}
{{- define "counterpoint.selectorLabels" -}}
app.kubernetes.io/name: {{ include "counterpoint.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "counterpoint.labels" -}}
helm.sh/chart: {{ include "counterpoint.chart" .ctx }}
{{ include "counterpoint.selectorLabels" . }}
app.kubernetes.io/part-of: counterpoint
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{- define "counterpoint.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "counterpoint.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Images: call with (dict "ctx" $ "image" .Values.images.ray); digest wins over tag. */}}
{{- define "counterpoint.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/* Addresses --------------------------------------------------------------------------- */}}

{{/* KubeRay names the Serve service of a RayService "<name>-serve-svc". */}}
{{- define "counterpoint.serveServiceName" -}}
{{- printf "%s-serve-svc" (include "counterpoint.fullname" .) }}
{{- end }}

{{- define "counterpoint.apiUrl" -}}
{{- printf "http://%s:%v" (include "counterpoint.serveServiceName" .) .Values.serve.httpPort }}
{{- end }}

{{- define "counterpoint.trainingClusterName" -}}
{{- printf "%s-train" (include "counterpoint.fullname" .) }}
{{- end }}

{{/* Ray job-submission address of the training cluster (its head service, dashboard port). */}}
{{- define "counterpoint.rayAddress" -}}
{{- if .Values.training.enabled }}
{{- printf "http://%s-head-svc:8265" (include "counterpoint.trainingClusterName" .) }}
{{- else }}
{{- .Values.training.externalAddress }}
{{- end }}
{{- end }}

{{- define "counterpoint.mlflowServiceName" -}}
{{- printf "%s-mlflow" (include "counterpoint.fullname" .) }}
{{- end }}

{{- define "counterpoint.mlflowTrackingUri" -}}
{{- if .Values.mlflow.enabled }}
{{- printf "http://%s:%v" (include "counterpoint.mlflowServiceName" .) .Values.mlflow.port }}
{{- else }}
{{- .Values.mlflow.externalTrackingUri }}
{{- end }}
{{- end }}

{{/* The Qdrant chart's fullname (same rule as its own helper). */}}
{{- define "counterpoint.qdrantFullname" -}}
{{- $q := .Values.qdrant | default dict }}
{{- if $q.fullnameOverride }}
{{- $q.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default "qdrant" $q.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "counterpoint.qdrantUrl" -}}
{{- if .Values.qdrant.enabled }}
{{- printf "http://%s:6333" (include "counterpoint.qdrantFullname" .) }}
{{- else }}
{{- required "externalQdrant.url is required when qdrant.enabled is false" .Values.externalQdrant.url }}
{{- end }}
{{- end }}

{{/*
The Secret holding the Qdrant API key, as "name: ...\nkey: ..." (empty: no key):
secrets.qdrantApiKey first, else what the Qdrant chart uses (apiKey.valueFrom, or the
Secret it generates when apiKey is true).
*/}}
{{- define "counterpoint.qdrantApiKeyRef" -}}
{{- $s := .Values.secrets.qdrantApiKey }}
{{- $apiKey := (.Values.qdrant | default dict).apiKey }}
{{- if $s.existingSecret }}
name: {{ $s.existingSecret }}
key: {{ $s.key }}
{{- else if and .Values.qdrant.enabled (kindIs "map" $apiKey) }}
{{- with $apiKey.valueFrom }}{{ with .secretKeyRef }}
name: {{ .name }}
key: {{ .key }}
{{- end }}{{ end }}
{{- else if and .Values.qdrant.enabled (eq (toJson $apiKey) "true") }}
name: {{ include "counterpoint.qdrantFullname" . }}-apikey
key: api-key
{{- end }}
{{- end }}

{{/* The Valkey chart's fullname (same rule as its own helper). */}}
{{- define "counterpoint.valkeyFullname" -}}
{{- $v := .Values.valkey | default dict }}
{{- if $v.fullnameOverride }}
{{- $v.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default "valkey" $v.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The Secret holding the Redis URL, as "name: ...\nkey: ..." (empty: none): secrets.redisUrl first,
else the chart's own Secret pointing at the bundled Valkey (valkey.enabled).
*/}}
{{- define "counterpoint.redisUrlRef" -}}
{{- $s := .Values.secrets.redisUrl }}
{{- if $s.existingSecret }}
name: {{ $s.existingSecret }}
key: {{ $s.key }}
{{- else if (.Values.valkey | default dict).enabled }}
name: {{ include "counterpoint.fullname" . }}-redis
key: url
{{- end }}
{{- end }}

{{/*
Gateway replicas at most: the gateway entry of serve.deployments (autoscaling max_replicas, else
num_replicas, else 1). Several need a shared Redis for the rate limits, like `counterpoint up`.
*/}}
{{- define "counterpoint.gatewayReplicas" -}}
{{- $n := 1 }}
{{- range .Values.serve.deployments }}
{{- if eq .name "gateway" }}
{{- $n = (dig "autoscaling_config" "max_replicas" (default 1 .num_replicas) .) }}
{{- end }}
{{- end }}
{{- $n | int }}
{{- end }}

{{/* Pod pieces -------------------------------------------------------------------------- */}}

{{/* Secret environment of the platform pods: only ever secretKeyRef. */}}
{{- define "counterpoint.secretEnv" -}}
- name: COUNTERPOINT_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "secrets.database.existingSecret is required" .Values.secrets.database.existingSecret }}
      key: {{ .Values.secrets.database.key }}
{{- with (include "counterpoint.qdrantApiKeyRef" . | fromYaml) }}
- name: COUNTERPOINT_QDRANT_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
{{- end }}
{{- with .Values.secrets.adminKey }}{{ if .existingSecret }}
- name: COUNTERPOINT_ADMIN_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .key }}
{{- end }}{{ end }}
{{- with (include "counterpoint.redisUrlRef" . | fromYaml) }}
- name: COUNTERPOINT_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .name }}
      key: {{ .key }}
{{- end }}
{{- end }}

{{- define "counterpoint.podSecurity" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "counterpoint.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* rayStartParams: KubeRay wants every value as a string. */}}
{{- define "counterpoint.rayStartParams" -}}
{{- $out := dict }}
{{- range $key, $value := . }}
{{- $_ := set $out $key (toString $value) }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
A Ray pod template (head or worker) of the serving or training cluster.
Call with (dict "ctx" $ "cluster" "serve"|"train" "role" "head"|"worker" "group" $group "spec" .Values.serve).
Probes: head pods on the GCS health route of the Ray dashboard; serving workers on the
gateway's /healthz through their Serve proxy; training workers on the raylet health route.
*/}}
{{- define "counterpoint.rayPodTemplate" -}}
{{- $ctx := .ctx }}
{{- $component := printf "%s-%s" .cluster .role }}
{{- $serving := eq .cluster "serve" -}}
metadata:
  labels:
    {{- include "counterpoint.labels" (dict "ctx" $ctx "component" $component) | nindent 4 }}
  annotations:
    checksum/settings: {{ include (print $ctx.Template.BasePath "/configmap.yaml") $ctx | sha256sum }}
spec:
  {{- /* With in-tree autoscaling the head keeps the account KubeRay binds the autoscaler to. */}}
  {{- if or (eq .role "worker") (not .spec.autoscaling.enabled) }}
  serviceAccountName: {{ include "counterpoint.serviceAccountName" $ctx }}
  automountServiceAccountToken: false
  {{- end }}
  {{- include "counterpoint.podSecurity" $ctx | nindent 2 }}
  {{- with include "counterpoint.scheduling" .spec | trim }}{{ . | nindent 2 }}{{ end }}
  containers:
    - name: {{ printf "ray-%s" .role }}
      image: {{ include "counterpoint.image" (dict "ctx" $ctx "image" $ctx.Values.images.ray) }}
      imagePullPolicy: {{ $ctx.Values.images.pullPolicy }}
      ports:
        {{- if eq .role "head" }}
        - {name: gcs-server, containerPort: 6379}
        - {name: dashboard, containerPort: 8265}
        - {name: client, containerPort: 10001}
        {{- end }}
        - {name: dashboard-agent, containerPort: 52365}
        {{- if $serving }}
        - {name: serve, containerPort: {{ $ctx.Values.serve.httpPort }}}
        {{- end }}
      envFrom:
        - configMapRef:
            name: {{ include "counterpoint.fullname" $ctx }}-settings
      env:
        {{- include "counterpoint.secretEnv" $ctx | nindent 8 }}
      resources:
        {{- toYaml .group.resources | nindent 8 }}
      securityContext:
        {{- toYaml $ctx.Values.containerSecurityContext | nindent 8 }}
      {{- if eq .role "head" }}
      readinessProbe:
        httpGet: {path: /api/gcs_healthz, port: dashboard}
        initialDelaySeconds: 10
        periodSeconds: 5
        timeoutSeconds: 5
        failureThreshold: 10
      livenessProbe:
        httpGet: {path: /api/gcs_healthz, port: dashboard}
        initialDelaySeconds: 30
        periodSeconds: 5
        timeoutSeconds: 5
        failureThreshold: 120
      {{- else }}
      readinessProbe:
        {{- if $serving }}
        httpGet: {path: /healthz, port: serve}
        {{- else }}
        httpGet: {path: /api/local_raylet_healthz, port: dashboard-agent}
        {{- end }}
        initialDelaySeconds: 10
        periodSeconds: 10
        timeoutSeconds: 5
        failureThreshold: 6
      livenessProbe:
        httpGet: {path: /api/local_raylet_healthz, port: dashboard-agent}
        initialDelaySeconds: 30
        periodSeconds: 10
        timeoutSeconds: 5
        failureThreshold: 12
      {{- end }}
      volumeMounts:
        - {name: data, mountPath: {{ $ctx.Values.dataDir }}}
  volumes:
    - name: data
      emptyDir: {}
{{- end }}

{{/* A RayClusterSpec; call with the same dict as rayPodTemplate, without role/group. */}}
{{- define "counterpoint.rayClusterSpec" -}}
{{- $ctx := .ctx }}
{{- $args := . -}}
rayVersion: {{ $ctx.Values.rayVersion | quote }}
enableInTreeAutoscaling: {{ .spec.autoscaling.enabled }}
{{- if .spec.autoscaling.enabled }}
autoscalerOptions:
  idleTimeoutSeconds: {{ .spec.autoscaling.idleTimeoutSeconds }}
  upscalingMode: {{ .spec.autoscaling.upscalingMode }}
  securityContext:
    {{- toYaml $ctx.Values.containerSecurityContext | nindent 4 }}
{{- end }}
headGroupSpec:
  rayStartParams: {{ include "counterpoint.rayStartParams" (merge (dict "dashboard-host" "0.0.0.0") (.spec.head.rayStartParams | default dict)) }}
  template:
    {{- include "counterpoint.rayPodTemplate" (merge (dict "role" "head" "group" .spec.head) $args) | nindent 4 }}
workerGroupSpecs:
  {{- range .spec.workerGroups }}
  - groupName: {{ .groupName }}
    replicas: {{ .replicas }}
    minReplicas: {{ .minReplicas }}
    maxReplicas: {{ .maxReplicas }}
    rayStartParams: {{ include "counterpoint.rayStartParams" (.rayStartParams | default dict) }}
    template:
      {{- include "counterpoint.rayPodTemplate" (merge (dict "role" "worker" "group" .) $args) | nindent 6 }}
  {{- end }}
{{- end }}
