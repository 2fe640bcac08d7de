{{/* Labels shared by every object of one agent. */}}
{{- define "pallet-agents.labels" -}}
app.kubernetes.io/name: {{ .agent.name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: agent
app.kubernetes.io/part-of: pallet
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "pallet-agents.selector" -}}
app.kubernetes.io/name: {{ .agent.name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}
