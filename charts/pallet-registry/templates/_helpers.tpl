{{/*
Name helpers and the standard labels (app.kubernetes.io/*, helm.sh/chart).
Only Sprig functions that Helm 3 and Helm 4 both ship are used.
*/}}

{{- define "pallet-registry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, at most 63 characters (a DNS label). If the release name
already contains the chart name it is not repeated.
*/}}
{{- define "pallet-registry.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "pallet-registry.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pallet-registry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pallet-registry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pallet-registry.labels" -}}
helm.sh/chart: {{ include "pallet-registry.chart" . }}
{{ include "pallet-registry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: registry
app.kubernetes.io/part-of: pallet-dev
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The PVC the pod mounts: an existing one, or the chart's own. */}}
{{- define "pallet-registry.claimName" -}}
{{- default (include "pallet-registry.fullname" .) .Values.persistence.existingClaim }}
{{- end }}

{{/*
The hostPath PersistentVolume. PVs are cluster-wide, so the name carries the
namespace: two releases of the same name in different namespaces do not clash.
*/}}
{{- define "pallet-registry.hostPathVolumeName" -}}
{{- printf "%s-%s-data" .Release.Namespace (include "pallet-registry.fullname" .) | trunc 253 | trimSuffix "-" }}
{{- end }}

{{- define "pallet-registry.htpasswdSecretName" -}}
{{- default (printf "%s-htpasswd" (include "pallet-registry.fullname" .)) .Values.auth.htpasswd.existingSecret }}
{{- end }}

{{- define "pallet-registry.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end }}
{{- end }}

{{/* The `helm test` pod's image: tests.image, else the registry image. */}}
{{- define "pallet-registry.testImage" -}}
{{- $repository := default .Values.image.repository .Values.tests.image.repository }}
{{- $tag := default .Values.image.tag .Values.tests.image.tag }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}

{{/* Pod-level security context shared by the registry and the test pod. */}}
{{- define "pallet-registry.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "pallet-registry.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
{{- end }}

{{/*
The pull-through caches' labels: their own name, so selectors of the registry
(name=pallet-registry) never match them.
*/}}
{{- define "pallet-registry.mirrorsLabels" -}}
helm.sh/chart: {{ include "pallet-registry.chart" . }}
app.kubernetes.io/name: {{ printf "%s-mirrors" (include "pallet-registry.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: mirrors
app.kubernetes.io/part-of: pallet-dev
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
