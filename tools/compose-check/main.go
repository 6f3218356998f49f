// compose-check validates docker-compose.yaml with compose-go, the parser Docker Compose
// itself uses (schema validation, interpolation, anchors, depends_on graph), then checks
// K2's own deployment rules. No Docker engine is needed.
//
//	go run ./tools/compose-check docker-compose.yaml docker/.env.example
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// Services the production deployment must define (SPEC §7).
var required = []string{
	"kafka", "kafka-init", "registry", "postgres", "minio", "minio-init",
	"spark-master", "spark-worker-1", "spark-worker-2",
	"airflow-init", "airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
	"worker-binance", "worker-kraken", "worker-coinbase", "worker-bybit", "worker-okx",
}

// One-shot services: they run to completion, so no health check or restart policy.
var oneShot = map[string]bool{"minio-init": true, "airflow-init": true, "kafka-init": true}

// exampleEnv reads KEY=VALUE lines; empty values get a placeholder so that required
// `${VAR:?}` interpolations resolve during validation.
func exampleEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, _ := strings.Cut(line, "=")
		if value == "" {
			value = "validation-placeholder"
		}
		env[key] = value
	}
	return env, scanner.Err()
}

func check(project *types.Project) []string {
	var problems []string
	for _, name := range required {
		if _, err := project.GetService(name); err != nil {
			problems = append(problems, fmt.Sprintf("missing service %q", name))
		}
	}
	for _, svc := range project.Services {
		if !oneShot[svc.Name] {
			if svc.HealthCheck == nil || len(svc.HealthCheck.Test) == 0 {
				problems = append(problems, fmt.Sprintf("%s: no healthcheck", svc.Name))
			}
			if svc.Restart == "" || svc.Restart == "no" {
				problems = append(problems, fmt.Sprintf("%s: no restart policy", svc.Name))
			}
		}
		for _, port := range svc.Ports {
			if port.HostIP != "127.0.0.1" {
				problems = append(problems, fmt.Sprintf("%s: port %d published on %q, not 127.0.0.1", svc.Name, port.Target, port.HostIP))
			}
		}
	}
	return problems
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: compose-check COMPOSE_FILE ENV_EXAMPLE")
		os.Exit(2)
	}
	composeFile, envFile := os.Args[1], os.Args[2]
	env, err := exampleEnv(envFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compose-check:", err)
		os.Exit(2)
	}
	var pairs []string
	for k, v := range env {
		pairs = append(pairs, k+"="+v)
	}
	abs, _ := filepath.Abs(composeFile)
	opts, err := cli.NewProjectOptions([]string{abs},
		cli.WithWorkingDirectory(filepath.Dir(abs)), cli.WithEnv(pairs), cli.WithName("k2"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "compose-check:", err)
		os.Exit(2)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "compose-check: invalid compose file:", err)
		os.Exit(1)
	}
	if problems := check(project); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "compose-check:", p)
		}
		os.Exit(1)
	}
	fmt.Printf("compose-check: %s is valid: %d services, %d volumes\n", composeFile, len(project.Services), len(project.Volumes))
}
