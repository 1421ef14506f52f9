{{/* Name of the chart (or nameOverride), DNS-label safe. */}}
{{- define "lvs-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of every object name: fullnameOverride, else the release name (plus the chart name when the
release name does not contain it). */}}
{{- define "lvs-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "lvs-operator.controllerName" -}}
{{- printf "%s-controller" (include "lvs-operator.fullname" .) -}}
{{- end -}}

{{- define "lvs-operator.agentName" -}}
{{- printf "%s-agent" (include "lvs-operator.fullname" .) -}}
{{- end -}}

{{- define "lvs-operator.controllerServiceAccount" -}}
{{- default (include "lvs-operator.controllerName" .) .Values.controller.serviceAccount.name -}}
{{- end -}}

{{- define "lvs-operator.agentServiceAccount" -}}
{{- default (include "lvs-operator.agentName" .) .Values.agent.serviceAccount.name -}}
{{- end -}}

{{/* Heartbeat secret: the user's existing Secret, else the one the chart creates from agent.heartbeat.secret. */}}
{{- define "lvs-operator.heartbeatSecretName" -}}
{{- default (printf "%s-heartbeat" (include "lvs-operator.agentName" .)) .Values.agent.heartbeat.existingSecret -}}
{{- end -}}

{{- define "lvs-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object. Deliberately free of the chart version so that upgrading the chart alone
does not rewrite every object (GitOps: no spurious diffs). */}}
{{- define "lvs-operator.labels" -}}
app.kubernetes.io/part-of: lvs-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "lvs-operator.controllerSelector" -}}
app.kubernetes.io/name: {{ include "lvs-operator.controllerName" . }}
{{- end -}}

{{- define "lvs-operator.agentSelector" -}}
app.kubernetes.io/name: {{ include "lvs-operator.agentName" . }}
{{- end -}}
