{{/*
Names, labels and the pieces of the command, computed once as kctl/backends/pytorchjob.py does.
Kubernetes names and label values are cut to 63 characters; the job name to 50 (kctl's
MAX_JOB_NAME), so the operator's "<job>-worker-<i>" Services stay within 63.
*/}}

{{/* The chart's name, for labels. */}}
{{- define "kctl.chartName" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* helm.sh/chart: name-version, "+" is not allowed in label values. */}}
{{- define "kctl.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The PyTorchJob's name: .Values.name, else the release name cut to 50 characters. */}}
{{- define "kctl.jobName" -}}
{{- $name := .Values.name | default .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name) -}}
{{- fail (printf "job name %q (the release name) is not a DNS-1035 label: lowercase letters, digits and '-', starting with a letter; set name=..." $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{/* The ConfigMap holding the config tree. */}}
{{- define "kctl.configMapName" -}}
{{- printf "%s-config" (include "kctl.jobName" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The work-dir claim: the given one, the one this chart creates, or none (emptyDir). */}}
{{- define "kctl.workDirClaim" -}}
{{- if .Values.workDirPvc -}}
{{- .Values.workDirPvc -}}
{{- else if .Values.workDirSize -}}
{{- printf "%s-work-dir" (include "kctl.jobName" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* kctl.dev/config: the config's file name without ".py", made a label value (config_label). */}}
{{- define "kctl.configLabel" -}}
{{- $file := .Values.configInImage | default .Values.configName | base | trimSuffix ".py" -}}
{{- $value := regexReplaceAll "[^-A-Za-z0-9_.]+" $file "_" | trunc 63 -}}
{{- regexReplaceAll "^[^A-Za-z0-9]+|[^A-Za-z0-9]+$" $value "" | default "config" -}}
{{- end -}}

{{/* Labels of every object and pod: kctl's set, with Helm's instance, chart and manager. */}}
{{- define "kctl.labels" -}}
app.kubernetes.io/name: kctl-trainer
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ include "kctl.chart" . | quote }}
kctl.dev/config: {{ include "kctl.configLabel" . | quote }}
{{- range $key, $value := .Values.labels }}
{{ $key }}: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* The config files that travel in the ConfigMap: configFiles plus config as configName. */}}
{{- define "kctl.configFiles" -}}
{{- $files := deepCopy .Values.configFiles -}}
{{- if .Values.config -}}
{{- $_ := set $files .Values.configName .Values.config -}}
{{- end -}}
{{- if not (hasKey $files .Values.configName) -}}
{{- fail (printf "configFiles holds no %q (configName, the main config): set configName to one of %s, or give config" .Values.configName (keys $files | sortAlpha | join ", ")) -}}
{{- end -}}
{{- toJson $files -}}
{{- end -}}

{{/* spec.nprocPerNode: GPUs per node, else CPU processes per node (default 1). */}}
{{- define "kctl.nprocPerNode" -}}
{{- if gt (int .Values.gpus) 0 -}}
{{- int .Values.gpus -}}
{{- else -}}
{{- .Values.cpuProcs | default 1 | int -}}
{{- end -}}
{{- end -}}

{{/* OMP_NUM_THREADS of a CPU job with a cpu value (threads_per_process): whole CPUs per process,
at least 1; empty for GPU jobs, without cpu, or for a quantity that is not plain cores or
millicores (e.g. 2k). */}}
{{- define "kctl.ompThreads" -}}
{{- $cpu := toString .Values.cpu -}}
{{- if and (eq (int .Values.gpus) 0) .Values.cpu (regexMatch "^([0-9]+(\\.[0-9]*)?|\\.[0-9]+)m?$" $cpu) -}}
{{- $millicores := 0 -}}
{{- if hasSuffix "m" $cpu -}}
{{- $millicores = trimSuffix "m" $cpu | float64 | int -}}
{{- else -}}
{{- $millicores = mulf (float64 $cpu) 1000 | int -}}
{{- end -}}
{{- max 1 (div $millicores (mul 1000 (include "kctl.nprocPerNode" . | int))) -}}
{{- end -}}
{{- end -}}

{{/* The container's command (Job.trainer_args_for): --resume always, the user's arguments last. */}}
{{- define "kctl.command" -}}
{{- $config := .Values.configInImage | default (printf "/config/%s" .Values.configName) -}}
{{- $workDir := printf "/work_dirs/%s" (include "kctl.jobName" .) -}}
{{- $command := list "torchrun" "-m" "trainer" $config "--launcher" "pytorch" "--work-dir" $workDir "--resume" -}}
{{- range .Values.trainerArgs }}
{{- $command = append $command (toString .) -}}
{{- end -}}
{{- toJson $command -}}
{{- end -}}
