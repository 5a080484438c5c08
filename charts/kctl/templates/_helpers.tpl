{{/*
Names, labels, checks and the pieces of the command, computed once as kctl/backends/kubernetes.py,
pytorchjob.py and trainjob.py do. The job name is cut to the kind's limit (kctl's name_limit);
label values to 63 characters.
*/}}

{{/* helm.sh/chart: name-version, "+" is not allowed in label values. */}}
{{- define "kctl.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Whether the job is a TrainJob ("true") or a PyTorchJob (""). */}}
{{- define "kctl.isTrainJob" -}}
{{- if eq .Values.kind "TrainJob" }}true{{ end -}}
{{- end -}}

{{/* The longest job name of the kind (name_limit): a PyTorchJob's "<name>-worker-<i>" Services
stay within 63 characters; a TrainJob's pods "<name>-node-0-<nodes-1>-<5 chars>" do. */}}
{{- define "kctl.nameLimit" -}}
{{- if include "kctl.isTrainJob" . -}}
{{- sub 63 (len (printf "-node-0-%d-abcde" (sub (int .Values.nodes) 1))) -}}
{{- else -}}
50
{{- end -}}
{{- end -}}

{{/* The job's name: .Values.name (refused over the kind's limit with kctl's words; only a
TrainJob's limit can be hit here, a PyTorchJob's 50 is the schema's maxLength), else nameOverride,
else the release name, cut to the limit. */}}
{{- define "kctl.jobName" -}}
{{- $limit := include "kctl.nameLimit" . | int -}}
{{- if .Values.name -}}
{{- if gt (len .Values.name) $limit -}}
{{- fail (printf "job name '%s' is %d characters; a TrainJob of %d node(s) takes at most %d (the JobSet names pods <name>-node-0-<index>-<5 chars>, at most 63 characters, and fails later without a word on a longer one)" .Values.name (len .Values.name) (int .Values.nodes) $limit) -}}
{{- end -}}
{{- .Values.name -}}
{{- else -}}
{{- $from := ternary "nameOverride" "the release name" (not (empty .Values.nameOverride)) -}}
{{- $name := regexReplaceAll "-+$" (.Values.nameOverride | default .Release.Name | trunc $limit) "" -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name) -}}
{{- fail (printf "job name %q (%s) is not a DNS-1035 label: lowercase letters, digits and '-', starting with a letter; set name=..." $name $from) -}}
{{- end -}}
{{- $name -}}
{{- end -}}
{{- end -}}

{{/* The ConfigMap holding the config tree. */}}
{{- define "kctl.configMapName" -}}
{{- printf "%s-config" (include "kctl.jobName" .) -}}
{{- end -}}

{{/* The size of the work-dir claim the chart creates: workDirSize, "" for 0 (an emptyDir) or when
workDirPvc names an existing claim. */}}
{{- define "kctl.workDirSize" -}}
{{- $size := toString .Values.workDirSize -}}
{{- if and (not .Values.workDirPvc) (ne $size "0") -}}
{{- $size -}}
{{- end -}}
{{- end -}}

{{/* The work-dir claim: the given one, the one this chart creates, or none (emptyDir). */}}
{{- define "kctl.workDirClaim" -}}
{{- if .Values.workDirPvc -}}
{{- .Values.workDirPvc -}}
{{- else if include "kctl.workDirSize" . -}}
{{- printf "%s-work-dir" (include "kctl.jobName" .) -}}
{{- end -}}
{{- end -}}

{{/* The access mode the work-dir claim needs (claim_access): a PyTorchJob's Master alone mounts
it; every node of a TrainJob does. */}}
{{- define "kctl.claimAccess" -}}
{{- if and (include "kctl.isTrainJob" .) (gt (int .Values.nodes) 1) -}}
ReadWriteMany
{{- else -}}
ReadWriteOnce
{{- end -}}
{{- end -}}

{{/* kctl.dev/config: the config's file name without ".py", made a label value (config_label). */}}
{{- define "kctl.configLabel" -}}
{{- $file := .Values.configInImage | default .Values.configName | base | trimSuffix ".py" -}}
{{- $value := regexReplaceAll "[^-A-Za-z0-9_.]+" $file "_" | trunc 63 -}}
{{- regexReplaceAll "^[^A-Za-z0-9]+|[^A-Za-z0-9]+$" $value "" | default "config" -}}
{{- end -}}

{{/* The labels the chart sets itself (kctl's, with Helm's instance, chart and manager). */}}
{{- define "kctl.ownLabels" -}}
{{- $labels := dict "app.kubernetes.io/name" "kctl-trainer" "app.kubernetes.io/instance" .Release.Name "app.kubernetes.io/managed-by" .Release.Service -}}
{{- $_ := set $labels "app.kubernetes.io/version" .Chart.AppVersion -}}
{{- $_ = set $labels "helm.sh/chart" (include "kctl.chart" .) -}}
{{- $_ = set $labels "kctl.dev/config" (include "kctl.configLabel" .) -}}
{{- toJson $labels -}}
{{- end -}}

{{/* Labels of every object and pod: the chart's own, then .Values.labels. */}}
{{- define "kctl.labels" -}}
{{- range $key, $value := merge (include "kctl.ownLabels" . | fromJson) .Values.labels -}}
{{ $key | quote }}: {{ $value | quote }}
{{ end -}}
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

{{/* Processes per node (nprocPerNode, numProcPerNode): GPUs per node, else CPU processes per
node (default 1). */}}
{{- define "kctl.nprocPerNode" -}}
{{- if gt (int .Values.gpus) 0 -}}
{{- int .Values.gpus -}}
{{- else -}}
{{- .Values.cpuProcs | default 1 | int -}}
{{- end -}}
{{- end -}}

{{/* The trainer image (--image): repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "kctl.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}

{{/* maxRestarts, 3 when unset (DEFAULT_MAX_RESTARTS); unset so that a TrainJob can refuse it. */}}
{{- define "kctl.maxRestarts" -}}
{{- if kindIs "invalid" .Values.maxRestarts -}}
3
{{- else -}}
{{- int .Values.maxRestarts -}}
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

{{/* The trainer's environment, a list of {name, value}: kctl's variables (identical torchrun
nodes; for CPU training no GPUs and OMP_NUM_THREADS), then .Values.env in name order; a name
kctl sets keeps its place and takes the user's value, as `kctl train --env` does. */}}
{{- define "kctl.env" -}}
{{- $own := list (list "TORCH_ELASTIC_WORKER_IDENTICAL" "1") -}}
{{- if eq (int .Values.gpus) 0 -}}
{{- $own = append $own (list "CUDA_VISIBLE_DEVICES" "") -}}
{{- with include "kctl.ompThreads" . -}}
{{- $own = append $own (list "OMP_NUM_THREADS" .) -}}
{{- end -}}
{{- end -}}
{{- $env := list -}}
{{- $names := list -}}
{{- range $own -}}
{{- $name := index . 0 -}}
{{- $names = append $names $name -}}
{{- $env = append $env (dict "name" $name "value" (hasKey $.Values.env $name | ternary (get $.Values.env $name) (index . 1))) -}}
{{- end -}}
{{- range $name, $value := .Values.env -}}
{{- if not (has $name $names) -}}
{{- $env = append $env (dict "name" $name "value" $value) -}}
{{- end -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{/* The trainer container's resources: cpu and memory as request and limit, GPUs as a limit. */}}
{{- define "kctl.resources" -}}
{{- $resources := dict -}}
{{- range $key := list "cpu" "memory" -}}
{{- with get $.Values $key -}}
{{- $_ := set $resources "limits" (merge (get $resources "limits" | default dict) (dict $key (toString .))) -}}
{{- $_ = set $resources "requests" (merge (get $resources "requests" | default dict) (dict $key (toString .))) -}}
{{- end -}}
{{- end -}}
{{- if gt (int .Values.gpus) 0 -}}
{{- $_ := set $resources "limits" (merge (get $resources "limits" | default dict) (dict "nvidia.com/gpu" (int .Values.gpus))) -}}
{{- end -}}
{{- if $resources -}}
{{- toYaml $resources -}}
{{- end -}}
{{- end -}}

{{/* What kctl refuses and the schema cannot say (it can neither name the value nor give kctl's
reason): a value of a PyTorchJob given with a TrainJob (Option.refusal), workDirStorageClass
without a claim to create, an environment variable of the training operator's, a label the chart
sets itself. Renders nothing. */}}
{{- define "kctl.checks" -}}
{{- if include "kctl.isTrainJob" . -}}
{{- $refused := list
      (list "gang" .Values.gang "a TrainJob is gang-scheduled by its runtime's podGroupPolicy")
      (list "priorityClass" .Values.priorityClass "runtimePatches cannot set priorityClassName; use a TrainingRuntime that sets it (--runtime-kind TrainingRuntime --runtime NAME)")
      (list "maxRestarts" (not (kindIs "invalid" .Values.maxRestarts)) "a TrainJob's restarts are its runtime's Job backoffLimit (6 in torch-distributed); use a TrainingRuntime that sets another")
      (list "image.pullPolicy" .Values.image.pullPolicy "runtimePatches cannot set a container's imagePullPolicy; use a TrainingRuntime that sets it") -}}
{{- range $refused -}}
{{- if index . 1 -}}
{{- fail (printf "%s does not apply to a TrainJob: %s" (index . 0) (index . 2)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $name, $_ := .Values.env -}}
{{- if or (hasPrefix "PET_" $name) (has $name (list "MASTER_ADDR" "MASTER_PORT" "WORLD_SIZE" "RANK")) -}}
{{- fail (printf "env.%s: %s is set by the training operator for torchrun (PET_* and MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK are reserved)" $name $name) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.workDirStorageClass .Values.workDirPvc -}}
{{- fail (printf "workDirStorageClass is for the claim the chart creates; workDirPvc %s names an existing one" .Values.workDirPvc) -}}
{{- else if and .Values.workDirStorageClass (not (include "kctl.workDirSize" .)) -}}
{{- fail "workDirStorageClass is for the claim the chart creates; workDirSize 0 asks for none" -}}
{{- end -}}
{{- $own := include "kctl.ownLabels" . | fromJson -}}
{{- range $key, $_ := .Values.labels -}}
{{- if or (hasKey $own $key) (eq $key "kueue.x-k8s.io/queue-name") -}}
{{- fail (printf "labels.%s: the chart sets the label %s itself" $key $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
