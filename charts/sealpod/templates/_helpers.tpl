{{/*
Names, labels, image references and shared pod settings of the sealpod chart.
Every object name derives from "sealpod.fullname" so two releases never collide.
*/}}

{{- define "sealpod.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sealpod.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sealpod.operator.fullname" -}}
{{- printf "%s-operator" (include "sealpod.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sealpod.apiServer.fullname" -}}
{{- printf "%s-api-server" (include "sealpod.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The ClusterIP Service carrying the runtime and admin ports (never exposed). */}}
{{- define "sealpod.apiServer.internalName" -}}
{{- printf "%s-api-server-internal" (include "sealpod.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sealpod.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "sealpod.labels" -}}
helm.sh/chart: {{ include "sealpod.chart" . }}
app.kubernetes.io/name: {{ include "sealpod.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sealpod
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: call with (dict "root" $ "component" "operator"). */}}
{{- define "sealpod.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sealpod.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of one component's objects. */}}
{{- define "sealpod.componentLabels" -}}
{{ include "sealpod.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
An image reference: call with (dict "root" $ "image" .Values.operator.image).
registry/repository, then @digest if set, else :tag (component tag, global tag, appVersion).
*/}}
{{- define "sealpod.image" -}}
{{- $registry := .root.Values.image.registry | trimSuffix "/" -}}
{{- $repo := .image.repository -}}
{{- $ref := ternary $repo (printf "%s/%s" $registry $repo) (eq $registry "") -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $ref .image.digest -}}
{{- else -}}
{{- $tag := .image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- printf "%s:%s" $ref $tag -}}
{{- end -}}
{{- end -}}

{{/* The API server's replicas: SQLite is one file on one volume, so it is always 1. */}}
{{- define "sealpod.apiServer.replicas" -}}
{{- if eq .Values.storage.type "sqlite" -}}
1
{{- else -}}
{{- .Values.apiServer.replicas -}}
{{- end -}}
{{- end -}}

{{/* The Lease the operator replicas compete for. */}}
{{- define "sealpod.operator.leaseName" -}}
{{- .Values.operator.leaderElection.leaseName | default (include "sealpod.operator.fullname" .) -}}
{{- end -}}

{{/* URL of the runtime API, as sandbox pods reach it. */}}
{{- define "sealpod.runtimeApiUrl" -}}
{{- printf "http://%s.%s.svc:%d" (include "sealpod.apiServer.internalName" .) .Release.Namespace (int .Values.apiServer.runtimePort) -}}
{{- end -}}

{{/* The restricted pod security context shared by both components. */}}
{{- define "sealpod.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The restricted container security context shared by both components. */}}
{{- define "sealpod.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Comma-separated tenant namespaces, empty for all. */}}
{{- define "sealpod.watchNamespaces" -}}
{{- join "," .Values.rbac.tenantNamespaces -}}
{{- end -}}
