job "report" {
  type = "batch"
  periodic {
    crons            = ["0 3 * * *"]
    prohibit_overlap = true
  }
  group "report" {
    task "run" {
      driver = "docker"
      config { image = "busybox" }
    }
  }
}
